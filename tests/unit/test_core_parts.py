"""The parts an IKE SA owns, each on its own: what is due when, and which phase changes are
allowed (RFC 7296 §2.4, §2.8; DESIGN.md §2 "a part owns its state and transition table")."""

from __future__ import annotations

import pytest

from ikepulse.config.build import connection_config, liveness_policy
from ikepulse.core.child_sa import ChildLimits, ChildSa
from ikepulse.core.children import ChildEntry, ChildPhase, Children, Expire, Rekey
from ikepulse.core.connection import Identity
from ikepulse.core.peer_liveness import Dead, Keepalive, Liveness, PeerLiveness, Probe
from ikepulse.core.renewal import Due, IkeRenewal, RenewalPhase


def test_liveness_probes_after_dpd_delay_and_gives_up_at_the_budget():
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    assert peer.deadline(policy, behind_nat=False) == 10
    assert peer.due(9.9, policy, behind_nat=False) is None
    assert peer.due(10, policy, behind_nat=False) == Probe(budget=5)
    peer.probe_started(5)
    assert peer.state is Liveness.PROBING and peer.deadline(policy, behind_nat=False) == 15
    assert peer.due(12, policy, behind_nat=False) is None  # one probe at a time
    assert isinstance(peer.due(15, policy, behind_nat=False), Dead)
    assert peer.declared_dead(15) == 15 and peer.state is Liveness.DEAD


def test_a_sign_of_life_ends_the_probe_and_moves_the_budget():
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    peer.probe_started(5)
    peer.esp_activity(last_inbound=12.0, last_outbound=None)
    assert peer.state is Liveness.ALIVE and peer.deadline(policy, behind_nat=False) == 22


def test_keepalives_only_behind_a_nat_and_only_when_outbound_is_idle():
    policy = liveness_policy(dpd_delay=0, nat_keepalive=20)
    peer = PeerLiveness(now=0.0)
    assert peer.due(25, policy, behind_nat=False) is None
    peer.sent(10)
    assert peer.due(25, policy, behind_nat=True) is None
    assert peer.due(30, policy, behind_nat=True) == Keepalive()
    peer.keepalive_sent(30)
    assert peer.deadline(policy, behind_nat=True) == 50


def test_the_dead_stay_dead():
    peer = PeerLiveness(now=0.0)
    peer.declared_dead(1)
    with pytest.raises(AssertionError):
        peer.probe_started(5)


def _entry(spi: bytes, rekey_at: float, expires_at: float) -> ChildEntry:
    child = ChildSa("lan", spi, b"peer", None, None, (), (), None, 0.0)
    return ChildEntry(child, ChildLimits(rekey_at=rekey_at, expires_at=expires_at))


def test_children_due_follows_each_phase():
    children = Children(sa=None)
    installed, rekeying, deleting = (
        _entry(b"\0\0\1\0", 100, 110),
        _entry(b"\0\0\2\0", 50, 120),
        _entry(b"\0\0\3\0", 10, 20),
    )
    children.take([installed, rekeying, deleting], now=0.0)
    rekeying.to(ChildPhase.REKEYING)
    deleting.to(ChildPhase.DELETING)
    assert children.deadline() == 100  # not the rekey under way, not the SA being deleted
    assert children.due(100) == [Rekey(installed)]
    assert children.due(120) == [Expire(installed), Expire(rekeying)]


def test_a_deleted_child_cannot_come_back():
    entry = _entry(b"\0\0\1\0", 100, 110)
    entry.to(ChildPhase.DELETED)
    for phase in (ChildPhase.INSTALLED, ChildPhase.REKEYING, ChildPhase.REKEYED):
        with pytest.raises(AssertionError):
            entry.to(phase)


def _renewal(now: float, **lifetimes) -> IkeRenewal:
    connection = connection_config(
        "site", local_id=Identity.parse("a"), remote_id=None, psk=b"k", **lifetimes
    )
    renewal = IkeRenewal()
    renewal.schedule(now, connection, draw=lambda: 0.0)
    return renewal


def test_renewal_waits_while_a_rekey_is_under_way_but_expiry_does_not():
    renewal = _renewal(0.0, rekey_time=100.0, reauth_time=200.0, over_time=30.0)
    assert (renewal.rekey_at, renewal.reauth_at, renewal.expires_at) == (100, 200, 130)
    renewal.rekey_started()
    assert renewal.deadline() == 130 and renewal.due(125) is None
    assert renewal.due(130) is Due.EXPIRE


def test_a_colliding_rekey_is_remembered_until_ours_ends():
    renewal = _renewal(0.0, rekey_time=100.0)
    renewal.rekey_started()
    theirs = object()
    renewal.answered_colliding_rekey(theirs, b"\x01")
    assert renewal.phase is RenewalPhase.REKEY_COLLISION
    assert renewal.rekey_ended() == (theirs, b"\x01") and renewal.idle


def test_a_retired_ike_sa_lingers_and_never_rekeys():
    renewal = _renewal(0.0, rekey_time=100.0)
    renewal.retire(now=50.0)
    assert renewal.linger_until == 80.0 and renewal.due(100) is None
    with pytest.raises(AssertionError):
        renewal.rekey_started()
