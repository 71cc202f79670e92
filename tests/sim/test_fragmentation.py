"""IKE fragmentation between two ikepulse peers (RFC 7383): large IKE_AUTH and
CREATE_CHILD_SA messages in SKF fragments both ways, loss of fragments, the response cache,
fallback to plain SK, and forged or stray fragments counted and dropped."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ikepulse.config.build import fragment_policy
from ikepulse.core.events import ChildSaInstalled, ChildSaRekeyed, IkeSaEstablished
from ikepulse.core.fragments import Fragmentation
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.crypto.cipher import cipher_for
from ikepulse.crypto.sk import SkCrypter
from ikepulse.testing.loopback import (
    LEFT,
    LEFT_NET,
    RIGHT,
    RIGHT_NET,
    Clock,
    Peer,
    connection,
    run_until_idle,
    transfer,
)
from ikepulse.wire.enums import ExchangeType, NotifyType
from ikepulse.wire.message import FLAG_INITIATOR, Message, decode_message
from ikepulse.wire.payloads import EncryptedFragmentPayload, NotifyPayload
from ikepulse.wire.skf import seal_fragments
from ikepulse.wire.traffic_selectors import TrafficSelector

SIZE = 576
N_TS = 60
SUITE = "aes256gcm16-prfsha256-x25519"


def hosts(net: str, n: int = N_TS, offset: int = 0) -> tuple[TrafficSelector, ...]:
    base = int(net.split(".")[3].split("/")[0])
    return tuple(
        TrafficSelector.from_network(f"203.0.113.{base + offset + i}/32") for i in range(n)
    )


def peers(left_mode="yes", right_mode="yes", size=SIZE, seed=1, ike=SUITE, wide=False):
    """``left`` and ``right`` with a child of N_TS /32 selectors each way: IKE_AUTH is
    about 2 KB, beyond ``size``."""

    def side(local_id, remote_id, local_net, remote_net, mode):
        conn = connection(
            local_id,
            remote_id,
            local_net,
            remote_net,
            ike=ike,
            fragmentation=fragment_policy(mode=Fragmentation(mode), size=size),
        )
        (lan,) = conn.children
        lan = replace(lan, local_ts=hosts(local_net), remote_ts=hosts(remote_net))
        more = replace(
            lan, name="wide", local_ts=hosts(local_net, 50, 1), remote_ts=hosts(remote_net, 50, 1)
        )
        return replace(conn, children=(lan, more) if wide else (lan,))

    left = side("left.example", "right.example", LEFT_NET, RIGHT_NET, left_mode)
    right = side("right.example", "left.example", RIGHT_NET, LEFT_NET, right_mode)
    a = Peer(SaManager([left], random.Random(seed)), LEFT)
    b = Peer(SaManager([right], random.Random(seed + 1)), RIGHT)
    return a, b, Clock()


def sent(peer: Peer, exchange: ExchangeType) -> list:
    return [d for d in peer.sent if decode_message(d.data).exchange == exchange]


def is_fragment(datagram) -> bool:
    return isinstance(decode_message(datagram.data).encrypted, EncryptedFragmentPayload)


def ip_size(datagram) -> int:
    """The IP datagram as strongSwan counts fragment_size: IPv4, UDP, non-ESP marker."""
    marker = 4 if 500 not in (datagram.src[1], datagram.dst[1]) else 0
    return 20 + 8 + marker + len(datagram.data)


def up(a: Peer, b: Peer, clock: Clock, drop=None):
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, drop=drop)
    return sa


def test_a_large_ike_auth_travels_in_fragments_both_ways():
    #   left                                        right
    #   IKE_SA_INIT N(FRAGMENTATION_SUPPORTED) -->
    #                 <-- IKE_SA_INIT N(FRAGMENTATION_SUPPORTED)   (never fragmented)
    #   IKE_AUTH SKF 1/n ... n/n (60 + 60 TS) -->
    #                                      <-- IKE_AUTH SKF 1/m ... m/m
    a, b, clock = peers()
    sa = up(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    for peer in (a, b):
        (installed,) = peer.of(ChildSaInstalled)
        assert len(installed.local_ts) == len(installed.remote_ts) == N_TS
        auth = sent(peer, ExchangeType.IKE_AUTH)
        assert len(auth) >= 3 and all(is_fragment(d) for d in auth)
        assert all(ip_size(d) <= SIZE for d in auth)
        assert not any(is_fragment(d) for d in sent(peer, ExchangeType.IKE_SA_INIT))
        assert peer.manager.counters["fragmented_messages_sent"] == 1
        assert peer.manager.counters["fragmented_messages_received"] == 1
        assert peer.manager.counters["fragments_received"] == len(
            sent(other(a, b, peer), ExchangeType.IKE_AUTH)
        )


def other(a, b, peer):
    return b if peer is a else a


def test_a_message_that_fits_goes_as_plain_sk():
    a, b, clock = peers()
    sa = up(a, b, clock)
    sa.check_liveness(clock.now)
    run_until_idle(a, b, clock)
    for peer in (a, b):
        (check,) = sent(peer, ExchangeType.INFORMATIONAL)
        assert not is_fragment(check)
    assert sa.liveness.state.value == "alive"


@pytest.mark.parametrize(("left", "right"), [("no", "yes"), ("yes", "no"), ("accept", "accept")])
def test_without_fragmentation_on_one_side_both_send_plain_sk(left, right):
    a, b, clock = peers(left, right)
    sa = up(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED  # in memory nothing drops IP fragments
    for peer in (a, b):
        auth = sent(peer, ExchangeType.IKE_AUTH)
        assert len(auth) == 1 and not is_fragment(auth[0]) and ip_size(auth[0]) > SIZE
    init_notifies = [
        {p.type for p in decode_message(d.data).payloads if isinstance(p, NotifyPayload)}
        for d in a.sent[:1] + b.sent[:1]
    ]
    announced = [NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in n for n in init_notifies]
    assert announced == [left != "no", left != "no" and right != "no"]


def test_accept_takes_fragments_but_sends_none():
    a, b, clock = peers("yes", "accept")
    up(a, b, clock)
    assert all(is_fragment(d) for d in sent(a, ExchangeType.IKE_AUTH))
    assert [is_fragment(d) for d in sent(b, ExchangeType.IKE_AUTH)] == [False]


def test_twenty_percent_of_fragments_lost_the_tunnel_still_comes_up():
    a, b, clock = peers()
    loss = random.Random(20)
    lost = []

    def drop(datagram) -> bool:
        if not datagram.keepalive and is_fragment(datagram) and loss.random() < 0.2:
            lost.append(datagram)
            return True
        return False

    sa = up(a, b, clock, drop=drop)
    assert lost and sa.state is IkeState.ESTABLISHED
    assert a.manager.counters["retransmits_sent"] >= 1
    assert len(b.of(IkeSaEstablished)) == 1 and len(a.of(ChildSaInstalled)) == 1


def test_a_retransmitted_request_gets_every_fragment_of_the_cached_response():
    #   left                                     right
    #   IKE_AUTH SKF 1..n -->
    #            x-- SKF 1..m (all lost)
    #   (retransmit) SKF 1..n -->   SKF 1 answered from the cache: SKF 1..m again;
    #                               SKF 2..n are late fragments, counted
    a, b, clock = peers()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    transfer(a, b, clock)
    transfer(b, a, clock)  # IKE_SA_INIT
    transfer(a, b, clock)  # IKE_AUTH request fragments
    answer = b.manager.datagrams_to_send(clock.now)
    n_request = len(sent(a, ExchangeType.IKE_AUTH))
    assert len(answer) > 1 and all(is_fragment(d) for d in answer)
    clock.now = a.manager.get_timer()
    a.manager.handle_timer(clock.now)
    transfer(a, b, clock)
    again = b.manager.datagrams_to_send(clock.now)
    assert [d.data for d in again] == [d.data for d in answer]
    assert b.manager.counters["retransmits_answered"] == 1
    assert b.manager.counters["fragments_dropped_late"] == n_request - 1
    for d in again:
        a.manager.receive_datagram(d.data, d.src, d.dst, clock.now)
    assert sa.state is IkeState.ESTABLISHED


def test_large_create_child_sa_both_ways_and_after_an_ike_rekey_too():
    #   IKE_AUTH (lan) in fragments; CREATE_CHILD_SA (wide, 50 + 50 TS) in fragments;
    #   the IKE SA is rekeyed; rekeying wide on the new IKE SA is still fragmented
    a, b, clock = peers(wide=True)
    sa = up(a, b, clock)
    installed = {e.child: e for e in a.of(ChildSaInstalled)}
    assert len(installed["wide"].local_ts) == 50
    for peer in (a, b):
        assert all(is_fragment(d) for d in sent(peer, ExchangeType.CREATE_CHILD_SA))
        assert peer.manager.counters["fragmented_messages_sent"] == 2
    assert sa.rekey(clock.now)
    run_until_idle(a, b, clock)
    (new,) = [s for s in a.manager.sas.values() if not s.finished]
    assert new is not sa
    (wide,) = [c for c in new.children if c.name == "wide"]
    assert new.children.rekey(wide, clock.now)
    run_until_idle(a, b, clock)
    assert len(a.of(ChildSaRekeyed)) == 1
    for peer in (a, b):
        assert peer.manager.counters["fragmented_messages_sent"] == 3


def initiator_crypter(sa, key: bytes | None = None) -> SkCrypter:
    """The keys ``sa``'s initiator seals with (AES-GCM suite); ``key`` forges SK_ei."""
    real = sa.sk.keys.sk_ei
    return SkCrypter(cipher_for(*sa.sk.suite.encr), None, real if key is None else key)


def informational(sa, mid: int, limit: int, crypter: SkCrypter, size: int = 2000) -> list[bytes]:
    """An INFORMATIONAL request from ``sa``'s initiator in SKF fragments of ``limit``."""
    msg = Message(sa.spi_i, sa.spi_r, ExchangeType.INFORMATIONAL, FLAG_INITIATOR, mid)
    inner = [NotifyPayload(NotifyType(40000), bytes(size))]
    return seal_fragments(msg, inner, crypter, random.Random(mid).randbytes, limit)


def deliver(b: Peer, packets: list[bytes], clock: Clock) -> None:
    for packet in packets:
        b.manager.receive_datagram(packet, LEFT, RIGHT, clock.now)


def established_pair(right_mode="yes"):
    a, b, clock = peers(right_mode=right_mode)
    sa = up(a, b, clock)
    (peer_sa,) = b.manager.sas.values()
    return a, b, clock, sa, peer_sa.tasks.expected_request_id


def test_forged_fragments_are_never_kept_and_cannot_disturb_a_real_message():
    a, b, clock, sa, mid = established_pair()
    real = informational(sa, mid, 600, initiator_crypter(sa))
    forged = informational(sa, mid, 400, initiator_crypter(sa, key=bytes(len(sa.sk.keys.sk_ei))))
    assert len(forged) > len(real)  # a larger total would restart the collection
    deliver(b, real[:1], clock)
    deliver(b, forged, clock)
    assert b.manager.counters["fragments_dropped_invalid_icv"] == len(forged)
    assert b.manager.datagrams_to_send(clock.now) == []
    deliver(b, real[1:], clock)
    (answer,) = b.manager.datagrams_to_send(clock.now)
    assert decode_message(answer.data).is_response
    assert b.manager.counters["fragments_dropped_superseded"] == 0


def test_authenticated_but_inconsistent_fragments_are_counted_by_reason():
    a, b, clock, sa, mid = established_pair()
    crypter = initiator_crypter(sa)
    coarse = informational(sa, mid, 600, crypter)
    fine = informational(sa, mid, 400, crypter)
    deliver(b, fine[:2], clock)
    deliver(b, coarse[:1] + fine[:1], clock)  # a smaller total; the same number again
    huge = informational(sa, mid, 200, crypter, size=60000)  # more than 255 fragments
    deliver(b, huge[:1], clock)
    counters = b.manager.counters
    assert counters["fragments_dropped_total_changed"] == 1
    assert counters["fragments_dropped_duplicate"] == 1
    assert counters["fragments_dropped_too_many"] == 1
    deliver(b, fine[2:], clock)
    (answer,) = b.manager.datagrams_to_send(clock.now)
    deliver(b, fine[1:2], clock)  # after completion
    assert counters["fragments_dropped_late"] == 1
    assert sa.state is IkeState.ESTABLISHED and b.manager.datagrams_to_send(clock.now) == []


def test_fragments_to_a_peer_that_said_no_are_dropped():
    a, b, clock, sa, mid = established_pair(right_mode="no")
    deliver(b, informational(sa, mid, 600, initiator_crypter(sa)), clock)
    assert b.manager.counters["fragments_dropped_not_negotiated"] >= 3
    assert b.manager.datagrams_to_send(clock.now) == []


@pytest.mark.parametrize("ike", ["aes128-sha256-x25519", "chacha20poly1305-prfsha256-x25519"])
def test_cbc_hmac_and_chacha_suites_fragment_too(ike):
    a, b, clock = peers(ike=ike)
    sa = up(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    assert all(is_fragment(d) for d in sent(b, ExchangeType.IKE_AUTH))
