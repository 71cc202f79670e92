"""IKEv1 between two ikepulse peers in memory (RFC 2409, RFC 3706).

left (initiator)                              right
HDR, SA, VID(NAT-T), VID(DPD) -->
                                   <-- HDR, SA, VID, VID
HDR, KE, Ni, NAT-D, NAT-D -->
                                   <-- HDR, KE, Nr, NAT-D, NAT-D
HDR*, IDii, HASH_I, N(INITIAL-CONTACT) -->
                                   <-- HDR*, IDir, HASH_R
HDR*, HASH(1), SA, Ni, IDci, IDcr -->
                                   <-- HDR*, HASH(2), SA, Nr, IDci, IDcr
HDR*, HASH(3) -->
"""

from __future__ import annotations

import pytest

from ikepulse.core.events import (
    ChildSaDeleted,
    ChildSaInstalled,
    IkeSaEstablished,
    IkeSaFailed,
    PeerDead,
)
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import (
    LEFT,
    RIGHT,
    Clock,
    liveness_policy,
    make_peers,
    run_until_idle,
)

V1 = {"version": 1, "ike": "aes256-sha256-modp2048", "esp": "aes256-sha256"}


def up(left: dict | None = None, right: dict | None = None):
    a, b = make_peers({**V1, **(left or {})}, {**V1, **(right or {})})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    return a, b, sa, clock


@pytest.mark.parametrize(
    "ike, esp",
    [
        ("aes256-sha256-modp2048", "aes256-sha256"),
        ("aes128-sha1-modp2048", "aes128-sha1"),
        ("aes128-sha256-ecp256", "aes128gcm16-ecp256"),
    ],
)
def test_main_mode_and_quick_mode_install_matching_esp_keys(ike, esp):
    a, b, sa, _ = up({"ike": ike, "esp": esp}, {"ike": ike, "esp": esp})
    assert sa.state is IkeState.ESTABLISHED
    assert sa.version == 1
    (mine,) = a.of(ChildSaInstalled)
    (theirs,) = b.of(ChildSaInstalled)
    assert (mine.spi_in, mine.spi_out) == (theirs.spi_out, theirs.spi_in)
    assert mine.keys == theirs.keys
    assert mine.initiator and not theirs.initiator
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1


def test_aggressive_mode_needs_it_configured_on_the_responder():
    a, b, sa, _ = up({"aggressive": True}, {"aggressive": True})
    assert sa.state is IkeState.ESTABLISHED
    assert len(b.of(ChildSaInstalled)) == 1
    a, b, sa, _ = up({"aggressive": True}, {"aggressive": False})
    assert sa.state is not IkeState.ESTABLISHED
    assert not b.of(IkeSaEstablished)


def test_wrong_psk_fails_with_a_clear_reason_on_both_sides():
    a, b, sa, _ = up({}, {"psk": b"another secret!!"})
    assert sa.state is IkeState.FAILED
    (failed,) = a.of(IkeSaFailed)
    assert "AUTHENTICATION_FAILED" in failed.reason
    (refused,) = b.of(IkeSaFailed)
    assert "pre-shared key" in refused.reason


def test_proposal_mismatch_fails_at_once_with_no_proposal_chosen():
    a, b, sa, _ = up({}, {"ike": "aes128-sha1-modp2048"})
    assert sa.state is IkeState.FAILED
    (failed,) = a.of(IkeSaFailed)
    assert "NO_PROPOSAL_CHOSEN" in failed.reason


def test_dead_peer_detected_within_budget():
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3, nat_keepalive=0)
    a, b, sa, clock = up({"liveness": policy}, {"liveness": policy})
    start = clock.now
    run_until_idle(a, b, clock, until=clock.now + 20)
    assert sa.state is IkeState.ESTABLISHED  # DPD answered
    assert b.manager.counters["dpd_requests_answered"] > 0
    silenced = clock.now
    run_until_idle(a, b, clock, drop=lambda d: True, until=clock.now + 10)
    (dead,) = a.of(PeerDead)
    assert dead.detected_after <= 5.0 + 1e-6
    assert clock.now - silenced <= 10
    del start


def test_quick_mode_rekey_makes_before_it_breaks():
    """Phase 2 renewal: a new Quick Mode before the old pair expires; the old pair is
    deleted (Delete ESP) only after the new one was installed on both sides.

    left                                       right
    QM1 (same selectors) -->
                                        <-- QM2
    QM3 -->                                    (right: same child and TS: a rekey)
    ... REKEYED_DELETE_DELAY ...
    Informational D(ESP, old spi) -->
    """
    a, b, sa, clock = up({"rekey_time": 100.0}, {"rekey_time": 0.0})
    (first,) = a.of(ChildSaInstalled)
    run_until_idle(a, b, clock, until=clock.now + 105)
    installed = a.of(ChildSaInstalled)
    assert len(installed) == 2 and installed[1].replaces == first.spi_in
    deleted = a.of(ChildSaDeleted)
    assert [d.spi_in for d in deleted] == [first.spi_in]
    assert [d.spi_out for d in b.of(ChildSaDeleted)] == [first.spi_in]
    (peer,) = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert [c.spi_out for c in peer.children] == [installed[1].spi_in]
    assert [c.spi_in for c in sa.children] == [installed[1].spi_in]


def test_both_rekey_at_once_and_end_with_one_pair():
    a, b, sa, clock = up({"rekey_time": 100.0}, {"rekey_time": 100.0})
    run_until_idle(a, b, clock, until=clock.now + 200)
    (peer,) = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(sa.children) == len(peer.children) == 1
    assert sa.children[0].spi_in == peer.children[0].spi_out


def test_phase1_renewal_keeps_the_ipsec_sas():
    """IKEv1 has no phase 1 rekey: a new ISAKMP SA (Main Mode, no INITIAL-CONTACT) takes
    the IPsec SAs over on both sides, then the old one is deleted."""
    a, b, sa, clock = up({"ike_rekey_time": 300.0}, {})
    (child,) = a.of(ChildSaInstalled)
    run_until_idle(a, b, clock, until=clock.now + 320)
    assert sa.state is IkeState.DELETED
    (new,) = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    (peer,) = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert (peer.spi_i, peer.spi_r) == (new.spi_i, new.spi_r) != (sa.spi_i, sa.spi_r)
    assert [c.spi_in for c in new.children] == [child.spi_in]
    assert [c.spi_out for c in peer.children] == [child.spi_in]
    assert not a.of(ChildSaDeleted) and not b.of(ChildSaDeleted)
    assert len(a.of(ChildSaInstalled)) == 1


def test_behind_a_nat_floats_to_4500_encapsulates_and_keeps_the_mapping_alive():
    """RFC 3947: NAT-D in MM3/MM4 shows the NAT, MM5 goes 4500 -> 4500, Quick Mode asks
    for UDP-encapsulated tunnel mode, and keepalives hold the NAT's mapping."""
    policy = liveness_policy(dpd_delay=0, nat_keepalive=20)
    a, b = make_peers({**V1, "liveness": policy}, {**V1, "liveness": policy})
    a.public = "192.0.2.99"
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.state is IkeState.ESTABLISHED
    assert (sa.nat_local, sa.nat_remote) == (True, False)
    assert sa.local[1] == sa.remote[1] == 4500
    (mine,) = a.of(ChildSaInstalled)
    (theirs,) = b.of(ChildSaInstalled)
    assert mine.udp_encap and theirs.udp_encap
    assert theirs.remote == ("192.0.2.99", 4500)
    run_until_idle(a, b, clock, until=clock.now + 65)
    assert b.keepalives_received >= 3 and a.keepalives_received == 0


def test_version_0_answers_ikev1_and_ikev2():
    a, b, sa, _ = up({}, {"version": 0})
    assert sa.state is IkeState.ESTABLISHED and sa.version == 1
    a, b = make_peers({}, {"version": 0})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.state is IkeState.ESTABLISHED and sa.version == 2


def test_an_ikev2_only_responder_ignores_ikev1():
    a, b, sa, clock = up({}, {"version": 2})
    assert sa.state is not IkeState.ESTABLISHED
    assert b.manager.counters["dropped_no_connection"] >= 1


@pytest.mark.parametrize(
    "group", ["modp2048", "modp3072", "modp4096", "ecp256", "ecp384", "ecp521", "x25519"]
)
def test_phase1_and_pfs_groups(group):
    suite = {"ike": f"aes256-sha256-{group}", "esp": f"aes256-sha256-{group}"}
    a, b, sa, _ = up(suite, suite)
    assert sa.state is IkeState.ESTABLISHED
    (mine,) = a.of(ChildSaInstalled)
    assert mine.proposal == f"aes256-sha256-{group}"


def test_an_unanswered_main_mode_1_costs_one_datagram_and_expires():
    """A spoofed first message gets one MM2 (no retransmissions from the responder) and
    its half-open SA is gone after 30 s."""
    a, b = make_peers(V1, V1)
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    (mm1,) = a.manager.datagrams_to_send(clock.now)
    b.manager.receive_datagram(mm1.data, ("192.0.2.7", 500), RIGHT, clock.now)
    assert len(b.manager.datagrams_to_send(clock.now)) == 1
    sent = 0
    while (deadline := b.manager.get_timer()) is not None and deadline < clock.now + 100:
        clock.now = deadline
        b.manager.handle_timer(clock.now)
        sent += len(b.manager.datagrams_to_send(clock.now))
    assert sent == 0 and len(b.manager.datagrams_to_send(clock.now)) == 0
    assert not [sa for sa in b.manager.sas.values() if not sa.finished]
    (failed,) = b.of(IkeSaFailed)
    assert "30s" in failed.reason


def test_quick_mode_ids_carry_ipv6_subnets_and_ranges():
    from ikepulse.core.ikev1.quick_mode import id_of, ts_of
    from ikepulse.wire.traffic_selectors import TrafficSelector

    for cidr in ("2001:db8:1::/64", "203.0.113.0/26", "2001:db8::5/128"):
        ts = TrafficSelector.from_network(cidr)
        assert ts_of(id_of(ts)) == ts
    from ikepulse.testing.loopback import many_tunnels

    a, b = many_tunnels(2, **V1)  # IPv6 selectors 2001:db8:I::/64
    clock = Clock()
    for i in range(2):
        a.manager.initiate(f"t{i}", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert len(a.of(ChildSaInstalled)) == len(b.of(ChildSaInstalled)) == 2
