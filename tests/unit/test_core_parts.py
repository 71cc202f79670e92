"""The parts an IKE SA owns, each on its own: what is due when, and which phase changes are
allowed (RFC 7296 §2.4, §2.8; DESIGN.md §2 "a part owns its state and transition table")."""

from __future__ import annotations

import pytest

from ikepulse.config.build import connection_config, liveness_policy
from ikepulse.core.child_sa import ChildLimits, ChildSa
from ikepulse.core.children import ChildEntry, ChildPhase, Children, Expire, Rekey
from ikepulse.core.connection import Identity
from ikepulse.core.nat_mappings import NatMappings
from ikepulse.core.peer_liveness import (
    Cause,
    Dead,
    Direction,
    Liveness,
    PeerLiveness,
    Probe,
)
from ikepulse.core.renewal import Due, IkeRenewal, RenewalPhase
from ikepulse.core.sa_index import SLOT, SaTable
from ikepulse.core.state import IkeState


def test_liveness_probes_after_dpd_delay_and_gives_up_at_the_budget():
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    assert peer.deadline(policy) == 10
    assert peer.due(9.9, policy) is None
    assert peer.due(10, policy) == Probe(5, Cause.IDLE)
    peer.probe_started(5, Cause.IDLE, 10, policy, 0.0)
    assert peer.state is Liveness.PROBING and peer.deadline(policy) == 15
    assert peer.due(12, policy) is None  # one probe at a time
    assert isinstance(peer.due(15, policy), Dead)
    assert peer.declared_dead(15) == (15, Direction.SILENT) and peer.state is Liveness.DEAD


def test_a_sign_of_life_moves_the_budget_but_only_an_answer_ends_the_check():
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    peer.probe_started(5, Cause.IDLE, 10, policy, 0.0)
    peer.esp_activity(last_inbound=12.0, last_outbound=None, silent_since=None)
    assert peer.state is Liveness.PROBING and peer.deadline(policy) == 27
    peer.proven(13.0, sent_until=10.0, check_answered=True)
    assert peer.state is Liveness.ALIVE and peer.deadline(policy) == 23


def test_a_keepalive_needs_no_answer():
    """Behind a NAT a keepalive goes out between our answer and the peer's next request,
    which proves that answer: nothing is left unproven, so no check is due before
    dpd_delay and the verdict stays dpd_delay + dpd_timeout after the last sign of life.
    (Keepalives are the flow's, ``NatMappings``: they never reach the SA's liveness.)"""
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=4)
    peer = PeerLiveness(now=0.0)
    peer.sign_of_life(1.0)  # the peer's request, answered at once
    peer.sent(1.0)
    peer.proven(9.0, sent_until=1.0)  # its next request: it has our answer
    assert peer.unanswered_since is None
    assert peer.deadline(policy) == 19
    assert peer.due(19, policy) == Probe(5, Cause.IDLE)


def test_inbound_traffic_does_not_prove_that_ours_arrives():
    """Traffic flows both ways, but nothing we send is answered: a check after dpd_delay,
    the verdict (outbound) at dpd_delay + dpd_timeout after our first unanswered packet."""
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    for t in range(1, 11):
        peer.esp_activity(last_inbound=t, last_outbound=t, silent_since=t)
        assert peer.due(t, policy) is None
    peer.esp_activity(last_inbound=11, last_outbound=11, silent_since=11)
    assert peer.due(11, policy) == Probe(5, Cause.UNPROVEN)
    peer.probe_started(5, Cause.UNPROVEN, 11, policy, 0.0)
    assert peer.state is Liveness.SUSPECT
    for t in range(12, 16):
        peer.esp_activity(last_inbound=t, last_outbound=t, silent_since=t)
    assert "stopped reaching the peer" in peer.due(16, policy).reason
    assert peer.declared_dead(16) == (15, Direction.OUTBOUND)


def test_an_answer_proves_only_what_was_sent_before_the_request():
    peer = PeerLiveness(now=0.0)
    peer.sent(3.0)
    peer.sent(4.0)  # after the request's last transmission at 3.0
    peer.proven(4.5, sent_until=3.0)
    assert peer.unanswered_since == 3.0
    peer.proven(5.0, sent_until=4.0)
    assert peer.unanswered_since is None


def test_esp_without_a_reply_calls_for_a_check_within_a_few_rtts():
    policy = liveness_policy(dpd_delay=30, dpd_timeout=10, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    peer.observe_rtt(0.010, retransmits=0)  # RTO at its 0.2 s floor: wait 0.5 s
    peer.proven(1.0, sent_until=1.0)
    peer.esp_activity(last_inbound=None, last_outbound=5.3, silent_since=5.0)
    assert peer.due(5.49, policy) is None
    assert peer.due(5.5, policy) == Probe(35.5, Cause.NO_REPLY)
    peer.probe_started(35.5, Cause.NO_REPLY, 5.5, policy, 0.0)
    peer.proven(5.6, sent_until=5.5, check_answered=True)
    # One-way traffic: the next on-demand check waits twice as long.
    peer.esp_activity(last_inbound=None, last_outbound=6.0, silent_since=6.0)
    assert peer.deadline(policy) == 7.0
    # Inbound traffic ends the silence.
    peer.esp_activity(last_inbound=6.2, last_outbound=6.0, silent_since=6.0)
    assert peer.deadline(policy) == 36.0  # unanswered since 5.5 + 30


def test_the_earliest_unanswered_esp_of_any_child_counts():
    policy = liveness_policy(dpd_delay=30, dpd_timeout=10, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    peer.observe_rtt(0.010, retransmits=0)
    peer.esp_activity(last_inbound=None, last_outbound=5.3, silent_since=5.0)
    peer.esp_activity(last_inbound=None, last_outbound=5.1, silent_since=4.5)
    assert peer.deadline(policy) == 5.0  # 4.5 + 0.5
    assert peer.unanswered_since == 4.5


def test_a_retransmitted_request_we_answered_calls_for_a_check_at_once():
    policy = liveness_policy(dpd_delay=30, dpd_timeout=10, nat_keepalive=0)
    peer = PeerLiveness(now=0.0)
    peer.retransmission_seen(2.0)
    assert peer.due(2.5, policy) == Probe(39.5, Cause.PEER_RETRANSMITS)
    peer.probe_started(39.5, Cause.PEER_RETRANSMITS, 2.5, policy, 0.0)
    assert peer.state is Liveness.SUSPECT and peer.cause is Cause.PEER_RETRANSMITS


def test_a_flow_gets_a_keepalive_only_when_nothing_went_out_on_it_for_the_interval():
    flows, flow = NatMappings(), (("192.0.2.1", 4500), ("198.51.100.2", 4500))
    flows.file("sa1", flow, 20.0, last_sent=0.0)
    assert flows.deadline() == 20.0
    flows.carried(*flow, 10.0)  # an IKE datagram of any SA on the flow
    assert flows.due(20.0) == [] and flows.deadline() == 30.0
    assert flows.due(30.0) == [flow] and flows.last(*flow) == 30.0
    assert flows.deadline() == 50.0
    flows.file("sa1", None, 0.0, 0.0)  # no longer behind a NAT, or gone
    assert flows.deadline() is None and flows.due(100.0) == []


def test_sas_sharing_a_flow_share_its_keepalives_and_the_shortest_interval_counts():
    flows, flow = NatMappings(), (("192.0.2.1", 4500), ("198.51.100.2", 4500))
    for name in ("a", "b", "c"):
        flows.file(name, flow, 20.0, last_sent=1.0)
    flows.file("d", flow, 5.0, last_sent=2.0)  # a connection with a shorter interval
    assert flows.deadline() == 7.0
    assert flows.due(7.0) == [flow] and flows.deadline() == 12.0
    flows.file("d", None, 0.0, 0.0)
    assert flows.due(12.0) == [] and flows.deadline() == 27.0
    for name in ("a", "b"):
        flows.file(name, None, 0.0, 0.0)
    flows.file("c", flow, 20.0, last_sent=30.0)  # refiled: its ESP went out at 30
    assert flows.due(27.0) == [] and flows.deadline() == 50.0
    other = (("192.0.2.1", 4500), ("203.0.113.9", 4500))
    flows.file("e", other, 20.0, last_sent=40.0)
    assert flows.due(60.0) == [flow, other]


def test_the_dead_stay_dead():
    peer = PeerLiveness(now=0.0)
    peer.declared_dead(1)
    with pytest.raises(AssertionError):
        peer.probe_started(5, Cause.IDLE, 1, liveness_policy(), 0.0)


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


class _TimedSa:
    """What the SA table reads of a half-open IKE SA: its deadline, and nothing to file."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline, self.state, self.finished, self.name = (
            deadline,
            IkeState.CONNECTING,
            False,
            None,
        )
        self.children = Children(self)
        self.liveness = PeerLiveness(now=0.0)

    def get_timer(self) -> float | None:
        return self.deadline

    def keepalive_flow(self):
        return None, 0.0


def test_the_sa_table_wakes_each_sa_at_its_exact_deadline_wherever_it_moves():
    table = SaTable()
    first, second, third = _TimedSa(1.0), _TimedSa(1.0 + SLOT / 2), _TimedSa(5.0)
    for spi, sa in ((b"1", first), (b"2", second), (b"3", third)):
        table[spi] = sa
    assert table.next_deadline() == 1.0
    assert table.pop_due(1.0 - SLOT / 4) == []  # in the slot, not yet due
    assert table.pop_due(1.0) == [first]
    assert table.next_deadline() == 1.0 + SLOT / 2
    third.deadline = 0.5  # moved to an earlier slot
    table.touch(third)
    assert table.next_deadline() == 0.5
    second.deadline = None  # nothing due any more
    table.touch(second)
    assert table.pop_due(7.0) == [third]
    assert table.next_deadline() is None and table.pop_due(100.0) == []
    first.deadline = 2.0  # filed again after it was woken, then forgotten
    table.touch(first)
    assert table.next_deadline() == 2.0
    del table[b"1"]
    assert table.next_deadline() is None
