"""A path broken in one direction, with a fake clock (RFC 7296 §2.4, DESIGN.md §4).

Inbound traffic proves the peer alive; only an answer to one of our requests proves that
our packets reach it:

left                                          right
ESP -->  (lost)                               <-- ESP            (its traffic still arrives)
INFORMATIONAL {} -->  (lost, retransmitted inside dpd_timeout)
verdict: PeerDead(direction = outbound) within dpd_delay + dpd_timeout
"""

from __future__ import annotations

import random
import time

import pytest

from ikepulse.cli.status import format_status
from ikepulse.config.build import liveness_policy
from ikepulse.core.events import PeerDead, SaEndpointsChanged
from ikepulse.core.liveness import DpdAction
from ikepulse.core.peer_liveness import Cause, Liveness
from ikepulse.core.state import IkeState
from ikepulse.core.status import ike_sa_status
from ikepulse.testing.loopback import LEFT, established, informational_requests, run_until_idle

POLICY = liveness_policy(dpd_delay=2, dpd_timeout=3, dpd_action=DpdAction.CLEAR)


def from_left(datagram) -> bool:
    return datagram.src[0] == LEFT[0]


def traffic(a, b, sa, clock, seconds: float, inbound: bool, outbound: bool, drop=None) -> None:
    """Ten ESP packets a second through left's CHILD SA, as its data plane reports them."""
    (child,) = sa.children
    end = clock.now + seconds
    while clock.now < end and sa.state is IkeState.ESTABLISHED:
        clock.now += 0.1
        a.manager.esp_activity(
            [(child.spi_in, clock.now if inbound else None, clock.now if outbound else None, None)]
        )
        run_until_idle(a, b, clock, drop=drop, until=clock.now)


@pytest.fixture
def peers():
    return established(POLICY, liveness_policy(dpd_delay=0))


def test_our_packets_lost_while_the_peers_esp_arrives_is_detected_within_the_budget(peers):
    a, b, sa, clock = peers
    traffic(a, b, sa, clock, 10, inbound=True, outbound=True)
    assert a.of(PeerDead) == [] and sa.liveness.state is Liveness.ALIVE
    broken = clock.now
    traffic(a, b, sa, clock, 30, inbound=True, outbound=True, drop=from_left)
    (dead,) = a.of(PeerDead)
    assert dead.direction == "outbound" and "stopped reaching the peer" in dead.reason
    assert clock.now - broken <= POLICY.dpd_delay + POLICY.dpd_timeout + 0.1 + 1e-9
    assert sa.state is IkeState.FAILED


def test_the_peers_retransmissions_of_answered_requests_start_a_check_at_once():
    #   left                                        right (probing every 2 s)
    #                                               <-- INFORMATIONAL request
    #   answer --X (lost, as is all left sends)
    #                                               <-- the same request again
    #   INFORMATIONAL {} --X  (left's check, at once: its answers are being lost)
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, dpd_action=DpdAction.CLEAR)
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=2, dpd_timeout=30))
    clock.now += 1.0
    start = clock.now
    checked = []
    while not a.of(PeerDead) and clock.now < start + 30:
        run_until_idle(a, b, clock, drop=from_left, until=clock.now + 0.05)
        clock.now += 0.05
        if sa.liveness.cause is not None and not checked:
            checked.append((clock.now, sa.liveness.cause))
    ((when, cause),) = checked
    assert cause is Cause.PEER_RETRANSMITS
    # right checks at 2 s and retransmits 1.9 s later; left's own check was due at 10 s.
    assert when - start < 3
    (dead,) = a.of(PeerDead)
    assert dead.direction == "outbound"
    # Counted from left's first lost packet, its answer to right's first check:
    assert dead.detected_after <= policy.dpd_delay + policy.dpd_timeout + 1e-9
    assert clock.now - next(t for t in a.sent_at if t >= start) >= dead.detected_after


def test_esp_with_nothing_coming_back_is_checked_within_a_few_rtts(peers):
    a, b, sa, clock = peers
    traffic(a, b, sa, clock, 1, inbound=True, outbound=True)
    before = informational_requests(a)
    silent = clock.now
    traffic(a, b, sa, clock, 0.6, inbound=False, outbound=True)
    assert informational_requests(a) == before + 1
    assert sa.liveness.probes_sent == 1 and clock.now - silent < 1.0
    # The check was answered: the peer is there, and nothing was declared dead.
    assert sa.liveness.state is Liveness.ALIVE and a.of(PeerDead) == []


def test_one_way_traffic_backs_off_its_on_demand_checks(peers):
    """Traffic that is simply one-way (a stream nobody answers) costs few checks: each
    on-demand check in a row waits twice as long."""
    a, b, sa, clock = peers
    traffic(a, b, sa, clock, 60, inbound=False, outbound=True)
    assert informational_requests(a) <= 60 / POLICY.dpd_delay + 3
    assert a.of(PeerDead) == []


def test_a_peer_that_answers_keeps_a_busy_tunnel_alive_through_loss():
    a, b, sa, clock = established(POLICY, liveness_policy(dpd_delay=2, dpd_timeout=3))
    loss = random.Random(7)
    traffic(a, b, sa, clock, 600, inbound=True, outbound=True, drop=lambda d: loss.random() < 0.2)
    assert a.of(PeerDead) == [] and b.of(PeerDead) == []
    assert sa.state is IkeState.ESTABLISHED


@pytest.mark.parametrize("behind_nat", [True, False])
def test_authenticated_esp_from_a_new_port_moves_a_natted_peer(behind_nat):
    """The NAT in front of left remapped it: right learns the new port from left's ESP
    (the data plane reports only authenticated packets that advanced the replay window)
    and sends its ESP and IKE there; a peer not behind a NAT is never moved by ESP."""
    a, b, sa, clock = established(POLICY, left_public="192.0.2.77" if behind_nat else None)
    (peer,) = b.manager.sas.values()
    (peer_child,) = peer.children
    before = peer.remote
    remapped = (before[0], 31000)
    b.manager.esp_peer_moved(peer_child.spi_in, remapped)
    moved = b.of(SaEndpointsChanged)
    if behind_nat:
        assert peer.remote == remapped
        assert [(m.remote, m.spis_in) for m in moved] == [(remapped, (peer_child.spi_in,))]
    else:
        assert peer.remote == before and moved == []


def test_status_says_why_a_tunnel_is_suspect(peers):
    a, b, sa, clock = peers
    traffic(a, b, sa, clock, 1, inbound=False, outbound=True, drop=from_left)
    live = ike_sa_status(sa, time.time() - clock.now)["liveness"]
    assert (live["state"], live["cause"]) == ("suspect", Cause.NO_REPLY.value)
    assert live["unanswered_since"] is not None
    text = format_status([ike_sa_status(sa, time.time() - clock.now)])
    assert "liveness suspect (ESP went out and nothing came back)" in text
