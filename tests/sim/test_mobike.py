"""MOBIKE (RFC 4555) between two ikepulse peers in memory.

left (original initiator)                     right
IKE_AUTH  N(MOBIKE_SUPPORTED) N(NO_ADDITIONAL_ADDRESSES) -->
      <-- N(MOBIKE_SUPPORTED) N(NO_ADDITIONAL_ADDRESSES)
... left's address 198.51.100.1 goes away, 198.51.100.3 remains ...
INFORMATIONAL from .3: N(UPDATE_SA_ADDRESSES) N(COOKIE2) N(NATD_S) N(NATD_D) -->
      <-- N(NATD_S) N(NATD_D) N(COOKIE2)           right moves IKE and CHILD SAs to .3
"""

from __future__ import annotations

import pytest

from ikepulse.config.build import liveness_policy
from ikepulse.core.events import SaEndpointsChanged
from ikepulse.core.state import IkeState
from ikepulse.core.task import Purpose
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle, transfer
from ikepulse.wire.enums import ExchangeType, NotifyType
from ikepulse.wire.message import decode_message
from ikepulse.wire.payloads import NotifyPayload

MOVED = "198.51.100.3"


def establish(left_kw=None, right_kw=None, seed=1):
    a, b = make_peers(left_kw, right_kw, seed=seed)
    clock = Clock()
    a.manager.local_addresses_changed([LEFT[0], "203.0.113.1"], clock.now)
    b.manager.local_addresses_changed([RIGHT[0]], clock.now)
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.state is IkeState.ESTABLISHED
    (peer_sa,) = b.manager.sas.values()
    return a, b, sa, peer_sa, clock


def sent_informationals(peer) -> list:
    out = []
    for d in peer.sent:
        if d.keepalive:
            continue
        msg = decode_message(d.data)
        if msg.exchange == ExchangeType.INFORMATIONAL:
            out.append((d, msg))
    return out


def test_mobike_negotiated_and_ike_floats_to_4500_without_nat():
    a, b, sa, peer_sa, _ = establish()
    assert sa.local[1] == 4500 and sa.remote[1] == 4500
    assert peer_sa.local[1] == 4500 and peer_sa.remote[1] == 4500
    assert not sa.udp_encap  # no NAT: plain ESP
    status = a.manager.status(0.0, lambda spi: {})[0]
    assert status["mobike"] is True
    assert b.manager.status(0.0, lambda spi: {})[0]["mobike"] is True


@pytest.mark.parametrize(("left", "right"), [(False, True), (True, False), (False, False)])
def test_mobike_off_on_either_side_is_not_negotiated(left, right):
    a, b, sa, peer_sa, clock = establish({"mobike": left}, {"mobike": right})
    assert a.manager.status(0.0, lambda spi: {})[0]["mobike"] is False
    assert b.manager.status(0.0, lambda spi: {})[0]["mobike"] is False
    # Without MOBIKE, losing our address moves nothing: the liveness check finds it.
    a.manager.local_addresses_changed([MOVED], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.local[0] == LEFT[0] and peer_sa.remote[0] == LEFT[0]
    assert sent_informationals(a) == []


def test_initiator_address_change_moves_both_sides_without_a_new_ike_sa():
    a, b, sa, peer_sa, clock = establish()
    child_spis = {c.spi_in for c in peer_sa.children}
    a.manager.local_addresses_changed([MOVED, "203.0.113.1"], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.local == (MOVED, 4500)
    assert peer_sa.remote == (MOVED, 4500)
    assert sa.state is peer_sa.state is IkeState.ESTABLISHED
    (ours,) = a.of(SaEndpointsChanged)
    (theirs,) = b.of(SaEndpointsChanged)
    assert ours.local == (MOVED, 4500) and theirs.remote == (MOVED, 4500)
    assert set(theirs.spis_in) == child_spis
    assert not theirs.udp_encap
    # The update went out from the new address, its answer came back to it.
    (request, msg), *_ = [(d, m) for d, m in sent_informationals(a) if not m.is_response]
    assert request.src == (MOVED, 4500)
    (answer, _) = [(d, m) for d, m in sent_informationals(b) if m.is_response][-1]
    assert answer.dst == (MOVED, 4500)
    assert len(a.manager.sas) == len(b.manager.sas) == 1  # no new IKE SA


def test_responder_address_change_sends_its_address_list_and_the_initiator_follows():
    a, b, sa, peer_sa, clock = establish()
    b.manager.local_addresses_changed(["198.51.100.4"], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert peer_sa.local == ("198.51.100.4", 4500)
    assert sa.remote == ("198.51.100.4", 4500)
    (theirs,) = a.of(SaEndpointsChanged)
    assert theirs.remote == ("198.51.100.4", 4500)
    assert sa.mobility.peer_addresses == ()
    assert b.manager.counters["mobike_updates_received"] == 0
    assert a.manager.counters["mobike_updates_received"] == 1


def test_responder_never_asks_the_initiator_to_move():
    """§3.5: UPDATE_SA_ADDRESSES from the responder is ignored."""
    a, b, sa, peer_sa, clock = establish()
    peer_sa.start(Purpose.MOBIKE_UPDATE, clock.now)
    for d in b.manager.datagrams_to_send(clock.now):
        a.manager.receive_datagram(d.data, ("198.51.100.9", 4500), d.dst, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.remote == (RIGHT[0], 4500)
    assert a.of(SaEndpointsChanged) == []


def test_address_list_sent_when_other_addresses_change():
    a, b, sa, peer_sa, clock = establish()
    assert peer_sa.mobility.peer_addresses == ("203.0.113.1",)
    a.manager.local_addresses_changed([LEFT[0]], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert peer_sa.mobility.peer_addresses == ()
    assert sa.local[0] == LEFT[0] and peer_sa.remote[0] == LEFT[0]
    a.manager.local_addresses_changed([LEFT[0]], clock.now)  # nothing new: nothing sent
    assert a.manager.datagrams_to_send(clock.now) == []


def test_cookie2_mismatch_closes_the_ike_sa():
    a, b, sa, peer_sa, clock = establish()
    a.manager.local_addresses_changed([MOVED], clock.now)
    transfer(a, b, clock)  # the update reaches right; its answer is replaced below
    (answer,) = b.manager.datagrams_to_send(clock.now)
    # Right's answer echoes COOKIE2; one with another cookie (authentic, from right's SA:
    # the return routability check failed) closes the IKE SA.
    msg = decode_message(answer.data)
    assert msg.is_response
    forged = peer_sa.encode(
        ExchangeType.INFORMATIONAL,
        msg.message_id,
        response=True,
        payloads=[NotifyPayload(NotifyType.COOKIE2, bytes(16))],
    )
    a.manager.receive_datagram(forged, answer.src, answer.dst, clock.now)
    assert sa.finished
    assert a.manager.counters["mobike_updates_received"] == 0


def test_unauthenticated_input_never_moves_anything():
    a, b, sa, peer_sa, clock = establish()
    peer_sa.start(Purpose.LIVENESS_CHECK, clock.now)
    (request,) = b.manager.datagrams_to_send(clock.now)
    garbled = bytearray(request.data)
    garbled[-1] ^= 1  # integrity check fails
    a.manager.receive_datagram(bytes(garbled), ("192.0.2.99", 4500), request.dst, clock.now)
    assert sa.remote == (RIGHT[0], 4500)
    assert a.of(SaEndpointsChanged) == []
    assert a.manager.datagrams_to_send(clock.now) == []


def test_with_mobike_authenticated_messages_from_a_new_address_move_nothing():
    """RFC 4555 §3.5: only UPDATE_SA_ADDRESSES moves an IKE SA, not an ordinary message."""
    a, b, sa, peer_sa, clock = establish({"force_encap": True}, {"force_encap": True})
    assert sa.udp_encap
    peer_sa.start(Purpose.LIVENESS_CHECK, clock.now)
    (request,) = b.manager.datagrams_to_send(clock.now)
    a.manager.receive_datagram(request.data, ("192.0.2.99", 4500), request.dst, clock.now)
    assert sa.remote == (RIGHT[0], 4500)
    (answer,) = a.manager.datagrams_to_send(clock.now)
    assert answer.dst == ("192.0.2.99", 4500)  # the answer goes where the request came from


def test_without_mobike_a_nat_port_change_is_still_followed():
    a, b, sa, peer_sa, clock = establish(
        {"force_encap": True, "mobike": False}, {"force_encap": True, "mobike": False}
    )
    assert peer_sa.remote == (LEFT[0], 4500)
    sa.start(Purpose.LIVENESS_CHECK, clock.now)
    (request,) = a.manager.datagrams_to_send(clock.now)
    b.manager.receive_datagram(request.data, (LEFT[0], 40000), request.dst, clock.now)
    assert peer_sa.remote == (LEFT[0], 40000)
    (moved,) = b.of(SaEndpointsChanged)
    assert moved.remote == (LEFT[0], 40000) and moved.udp_encap


class Nat:
    """left behind a NAT that maps its address and port to PUBLIC and a port it picks."""

    PUBLIC = "192.0.2.1"

    def __init__(self) -> None:
        self.port = 40000

    def remap(self) -> None:
        self.port += 1


def run_natted(a, b, clock, nat: Nat, until: float):
    """Like run_until_idle, with left's datagrams masqueraded by ``nat``; datagrams right
    sends to an outdated mapping are lost."""
    for _ in range(10_000):
        moved = 0
        for d in a.manager.datagrams_to_send(clock.now):
            a.sent.append(d)
            moved += 1
            if not d.keepalive:
                b.manager.receive_datagram(d.data, (nat.PUBLIC, nat.port), d.dst, clock.now)
        for d in b.manager.datagrams_to_send(clock.now):
            b.sent.append(d)
            moved += 1
            if d.dst == (nat.PUBLIC, nat.port) and not d.keepalive:
                a.manager.receive_datagram(d.data, d.src, (LEFT[0], 4500), clock.now)
        if moved:
            continue
        timers = [t for t in (a.manager.get_timer(), b.manager.get_timer()) if t is not None]
        if not timers or min(timers) > until:
            break
        clock.now = max(clock.now, min(timers))
        a.manager.handle_timer(clock.now)
        b.manager.handle_timer(clock.now)
    a.drain_events()
    b.drain_events()


def test_nat_mapping_change_found_by_a_liveness_check_triggers_an_update():
    """left behind a NAT, MOBIKE on both sides: the NAT remaps left to a new port, right
    (which no longer follows implicitly) sends to the old one. left's liveness check carries
    NAT-D; right's answer reveals the new mapping; left sends UPDATE_SA_ADDRESSES at once.
    The first check, with no mapping known yet, updates too (that sets the baseline)."""
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3, nat_keepalive=0, first_check_spread=0)
    a, b = make_peers({"liveness": policy}, {"liveness": policy})
    clock, nat = Clock(), Nat()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_natted(a, b, clock, nat, until=clock.now + 2.5)
    assert sa.state is IkeState.ESTABLISHED and sa.nat_local and sa.mobility.enabled
    (peer_sa,) = b.manager.sas.values()
    assert peer_sa.remote == (nat.PUBLIC, nat.port)
    assert b.manager.counters["mobike_updates_received"] == 1  # the baseline
    nat.remap()
    remapped_at = clock.now
    run_natted(a, b, clock, nat, until=remapped_at + 2.5)
    assert peer_sa.remote == (nat.PUBLIC, nat.port)
    assert a.manager.counters["mobike_nat_mapping_changes"] == 2
    assert b.manager.counters["mobike_updates_received"] == 2
    (moved,) = b.of(SaEndpointsChanged)
    assert moved.remote == (nat.PUBLIC, nat.port) and moved.udp_encap
    assert sa.state is IkeState.ESTABLISHED
    # Later checks find the same mapping: no further update.
    run_natted(a, b, clock, nat, until=clock.now + 10)
    assert a.manager.counters["mobike_updates_sent"] == 2
    assert b.manager.counters["mobike_updates_received"] == 2
    assert sa.state is IkeState.ESTABLISHED


def test_nat_remap_without_mobike_on_the_peer_recovers_through_implicit_following():
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3, nat_keepalive=0)
    a, b = make_peers({"liveness": policy}, {"liveness": policy, "mobike": False})
    clock, nat = Clock(), Nat()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_natted(a, b, clock, nat, until=clock.now + 0.001)
    (peer_sa,) = b.manager.sas.values()
    nat.remap()
    run_natted(a, b, clock, nat, until=clock.now + 2.5)
    assert peer_sa.remote == (nat.PUBLIC, nat.port)
    assert sa.state is IkeState.ESTABLISHED
    assert b.manager.counters["mobike_updates_received"] == 0


def test_the_route_lookup_picks_the_new_address():
    a, b, sa, peer_sa, clock = establish()
    addresses = ["198.51.100.5", MOVED, "2001:db8::5"]
    a.manager.local_addresses_changed(addresses, clock.now, source_for=lambda dst: MOVED)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.local[0] == MOVED and peer_sa.remote[0] == MOVED


def test_no_address_of_the_family_left_moves_nothing_yet():
    a, b, sa, peer_sa, clock = establish()
    a.manager.local_addresses_changed(["2001:db8::5"], clock.now)
    assert sa.local[0] == LEFT[0]
    a.manager.local_addresses_changed(["2001:db8::5", MOVED], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.local[0] == MOVED and peer_sa.remote[0] == MOVED


def test_a_rekeyed_ike_sa_keeps_mobike_and_the_original_roles():
    """§2.18 rekey by the responder: the original initiator still decides on moves."""
    a, b, sa, peer_sa, clock = establish()
    assert peer_sa.rekey(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (new,) = a.manager.find("site")
    (peer_new,) = b.manager.find("site")
    assert new is not sa and new.mobility.enabled and new.mobility.original_initiator
    assert not peer_new.mobility.original_initiator
    a.manager.local_addresses_changed([MOVED], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert peer_new.remote == (MOVED, 4500)
    assert b.manager.counters["mobike_updates_received"] == 1
