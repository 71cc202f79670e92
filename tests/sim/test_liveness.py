"""Liveness engine with a fake clock (RFC 7296 §2.4, RFC 3948 §2.3, DESIGN.md §4).

left (probing)                        right
... idle for dpd_delay ...
INFORMATIONAL HDR, SK {} -->  (lost: right is blackholed)
... retransmissions spread inside dpd_timeout ...
verdict: PeerDead no later than dpd_delay + dpd_timeout after the last sign of life
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest

from ikepulse.config.build import liveness_policy, retransmit_policy
from ikepulse.core.events import ChildSaInstalled, IkeSaEstablished, PeerDead, TunnelRestored
from ikepulse.core.liveness import (
    DpdAction,
    RttEstimator,
    probe_due,
    probe_waits,
    restart_delay,
)
from ikepulse.core.peer_liveness import Liveness
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import (
    LEFT,
    RIGHT,
    Clock,
    established,
    informational_requests,
    make_peers,
    many_tunnels,
    run_until_idle,
    transfer,
)
from ikepulse.wire.enums import ExchangeType
from ikepulse.wire.message import decode_message


def test_pure_functions():
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3)
    assert not probe_due(101.9, 100, policy) and probe_due(102, 100, policy)
    assert not probe_due(1e9, 0, liveness_policy(dpd_delay=0))
    waits = probe_waits(0.2, 3.0)
    assert sum(waits) == pytest.approx(3.0) and len(waits) == 15 and min(waits) >= 0.2
    assert probe_waits(5.0, 3.0) == [3.0]
    assert len(probe_waits(0.001, 10.0)) == 16
    rtt = RttEstimator()
    assert rtt.rto == 1.0
    rtt.observe(0.010)
    assert rtt.rto == 0.2  # floor
    for _ in range(20):
        rtt.observe(0.5)
    assert 0.5 <= rtt.rto < 1.0


@pytest.mark.parametrize("seed", range(40))
def test_detection_within_budget_over_random_schedules(seed):
    rng = random.Random(seed)
    policy = liveness_policy(
        dpd_delay=rng.uniform(0.5, 30), dpd_timeout=rng.uniform(0.5, 20), dpd_action=DpdAction.CLEAR
    )
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=0), seed=seed)
    # Some live time with random ESP traffic, then the peer goes silent.
    (child,) = sa.children
    for _ in range(rng.randrange(0, 20)):
        target = clock.now + rng.uniform(0, policy.dpd_delay * 1.5)
        run_until_idle(a, b, clock, until=target)
        clock.now = target
        if rng.random() < 0.5:
            a.manager.esp_activity([(child.spi_in, clock.now, clock.now, None)])
    assert sa.state is IkeState.ESTABLISHED
    last_life = sa.liveness.last_inbound
    unanswered = sa.liveness.unanswered_since
    evidence_ended = last_life if unanswered is None else min(last_life, unanswered)
    run_until_idle(a, b, clock, drop=lambda d: d.src == RIGHT or d.src[0] == RIGHT[0])
    (dead,) = a.of(PeerDead)
    budget = policy.dpd_delay + policy.dpd_timeout
    assert dead.detected_after <= budget + 1e-9 and dead.direction == "silent"
    assert clock.now - last_life == pytest.approx(dead.detected_after)
    # Not before the budget ran out for the earlier of the two directions' evidence.
    assert clock.now == pytest.approx(evidence_ended + budget)
    assert sa.liveness.state is Liveness.DEAD and list(sa.children) == []


def test_a_steady_bidirectional_flow_costs_at_most_one_check_per_dpd_delay():
    """Inbound ESP proves the peer alive, not that our packets reach it: a busy tunnel is
    checked, but by each side no more than once per dpd_delay."""
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3)
    a, b, sa, clock = established(policy)
    (child,) = sa.children
    (peer,) = b.manager.sas.values()
    (peer_child,) = peer.children
    start = clock.now
    while clock.now < start + 300:  # five minutes of traffic, ten packets a second each way
        clock.now += 0.1
        a.manager.esp_activity([(child.spi_in, clock.now, clock.now, None)])
        b.manager.esp_activity([(peer_child.spi_in, clock.now, clock.now, None)])
        run_until_idle(a, b, clock, until=clock.now)
    for side in (a, b):
        assert 0 < informational_requests(side) <= 300 / policy.dpd_delay
    assert a.of(PeerDead) == [] and b.of(PeerDead) == [] and sa.state is IkeState.ESTABLISHED


def test_idle_tunnel_is_probed_every_dpd_delay():
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5)
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=0))
    run_until_idle(a, b, clock, until=clock.now + 60.5)
    assert sa.liveness.probes_sent == 6 and informational_requests(a) == 6
    assert sa.state is IkeState.ESTABLISHED and sa.liveness.state is Liveness.ALIVE


def test_two_idle_peers_checking_each_other_share_one_check_per_interval():
    """Each check comes early by a fresh random fraction (``check_spread``): one side goes
    first and the other takes its request as proof of both directions, so an idle tunnel
    costs one exchange per dpd_delay, not one from each side."""
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5)
    a, b, sa, clock = established(policy)
    run_until_idle(a, b, clock, until=clock.now + 600)
    checks = informational_requests(a) + informational_requests(b)
    spread = 1 - policy.check_spread
    assert 600 / policy.dpd_delay <= checks <= 600 / (policy.dpd_delay * spread) + 2
    assert informational_requests(a) > 0 and informational_requests(b) > 0
    assert sa.liveness.state is Liveness.ALIVE and sa.state is IkeState.ESTABLISHED


@pytest.mark.parametrize("left_public", [None, "192.0.2.200"])
def test_checks_are_shared_when_the_loop_sends_a_moment_after_the_core_decided(left_public):
    """A daemon's loop sends what an event queued a little later: an answer still proves
    our own request (liveness notes a datagram when the exchange is sent, not when the
    loop gets to it), so the peer's checks still spare ours. Behind a NAT, the keepalives
    between two checks leave nothing unproven (they need no answer)."""
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=4)
    a, b, sa, clock = established(policy, left_public=left_public)
    end = clock.now + 600
    while (due := min(a.manager.get_timer(), b.manager.get_timer())) <= end:
        clock.now = max(clock.now, due)
        a.manager.handle_timer(clock.now)
        b.manager.handle_timer(clock.now)
        clock.now += 0.001
        while transfer(a, b, clock) + transfer(b, a, clock):
            clock.now += 0.001
    checks = informational_requests(a) + informational_requests(b)
    assert checks <= 600 / (policy.dpd_delay * (1 - policy.check_spread)) + 2
    assert sa.liveness.state is Liveness.ALIVE


def test_liveness_checks_are_logged_at_debug_and_other_exchanges_at_info(caplog):
    """An idle gateway checks every tunnel each dpd_delay: those empty INFORMATIONAL
    exchanges (§2.4) stay out of an INFO log, a Delete does not."""
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5)
    a, b, sa, clock = established(policy)
    with caplog.at_level(logging.DEBUG, logger="ikepulse.ike"):
        run_until_idle(a, b, clock, until=clock.now + 10.5)
        a.manager.delete(sa.connection.name, clock.now)
        run_until_idle(a, b, clock)
    lines = [
        (r.levelno, r.getMessage()) for r in caplog.records if "INFORMATIONAL" in r.getMessage()
    ]
    assert {level for level, text in lines if text.endswith("[  ]")} == {logging.DEBUG}
    assert {level for level, text in lines if "DELETE" in text} == {logging.INFO}


def test_10000_minutes_at_20_percent_loss_declares_no_live_peer_dead():
    policy = liveness_policy(dpd_delay=30, dpd_timeout=10, dpd_action=DpdAction.CLEAR)
    a, b, sa, clock = established(policy)
    loss = random.Random(42)
    run_until_idle(
        a,
        b,
        clock,
        drop=lambda d: loss.random() < 0.2,
        until=clock.now + 10_000 * 60,
        max_steps=10_000_000,
    )
    assert a.of(PeerDead) == [] and b.of(PeerDead) == []
    assert sa.state is IkeState.ESTABLISHED
    assert sa.liveness.probes_sent > 5_000  # the path really was probed all along


def test_restart_backs_off_exponentially_with_jitter_and_never_duplicates():
    policy = liveness_policy(
        dpd_delay=2,
        dpd_timeout=3,
        dpd_action=DpdAction.RESTART,
        restart_base=1,
        restart_cap=16,
        restart_jitter=0.25,
    )
    quick = retransmit_policy(timeout=1.0, base=1.0, tries=0)
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=0), retransmit=quick)
    gone = clock.now
    run_until_idle(a, b, clock, drop=lambda d: True, until=gone + 200)
    (dead,) = a.of(PeerDead)
    times = attempt_times(a)
    assert times[0] == pytest.approx(gone + dead.detected_after)  # the first restart is at once
    assert len(times) >= 8
    gaps = [
        t2 - t1 - 1.0 for t1, t2 in zip(times, times[1:], strict=False)
    ]  # minus the 1 s attempt
    for n, gap in enumerate(gaps, start=1):
        nominal = min(16, 2 ** (n - 1))
        assert 0.75 * nominal - 1e-9 <= gap <= nominal + 1e-9
    assert len(a.manager.sas) <= 1  # one attempt at a time, never two IKE SAs


def attempt_times(peer) -> list[float]:
    """When each new IKE SA was initiated (first IKE_SA_INIT of each initiator SPI)."""
    seen, times = set(), []
    for at, datagram in zip(peer.sent_at, peer.sent, strict=True):
        msg = decode_message(datagram.data)
        if msg.exchange == ExchangeType.IKE_SA_INIT and msg.spi_i not in seen:
            seen.add(msg.spi_i)
            times.append(at)
    return times[1:]  # the first one set up the original IKE SA


def test_restart_restores_the_tunnel_when_the_peer_returns():
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3, dpd_action=DpdAction.RESTART)
    quick = retransmit_policy(timeout=1.0, base=1.0, tries=0)
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=0), retransmit=quick)
    outage_end = clock.now + 30
    run_until_idle(a, b, clock, drop=lambda d: clock.now < outage_end, until=outage_end + 60)
    (restored,) = a.of(TunnelRestored)
    assert restored.attempts >= 2
    live = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(live) == 1 and len(live[0].children) == 1
    peer_live = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(peer_live) == 1  # the responder replaced the old IKE SA (unique = replace)
    assert len(b.of(ChildSaInstalled)) == 2


def test_nat_keepalives_only_behind_nat_and_when_outbound_idle():
    policy = liveness_policy(dpd_delay=0, nat_keepalive=20)
    a, b, sa, clock = established(policy, left_public="192.0.2.99")
    (peer,) = b.manager.sas.values()
    assert sa.nat_local and not sa.nat_remote and peer.nat_remote and not peer.nat_local
    run_until_idle(a, b, clock, until=clock.now + 100.5)
    assert b.keepalives_received == 5 and a.keepalives_received == 0
    (child,) = sa.children
    before = b.keepalives_received
    for _ in range(100):  # outbound ESP every second: no keepalive needed
        clock.now += 1
        a.manager.esp_activity([(child.spi_in, None, clock.now, None)])
        run_until_idle(a, b, clock, until=clock.now)
    assert b.keepalives_received == before


def test_ike_sas_sharing_a_udp_flow_keep_its_nat_mapping_together():
    """One NAT mapping per flow (RFC 3948 §2.3): three idle IKE SAs to one peer behind a NAT
    need one keepalive per interval between them, not one each."""
    a, b = many_tunnels(3, liveness=liveness_policy(dpd_delay=0, nat_keepalive=20))
    a.public = "192.0.2.99"
    b.manager.connections = [replace(c, remote_addrs=(a.public,)) for c in b.manager.connections]
    clock = Clock()
    sas = [a.manager.initiate(f"t{i}", LEFT, RIGHT, clock.now) for i in range(3)]
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert all(sa.state is IkeState.ESTABLISHED and sa.nat_local for sa in sas)
    run_until_idle(a, b, clock, until=clock.now + 200.5)
    assert 200 / 20 - 1 <= b.keepalives_received <= 200 / 20 + 1


def test_new_ike_sa_from_the_same_identity_replaces_the_old_one():
    policy = liveness_policy(dpd_delay=0)
    a, b, sa, clock = established(policy)
    # The right peer reboots and initiates afresh: the left drops the stale SA at once.
    from ikepulse.core.sa_manager import SaManager

    b.manager = SaManager(b.manager.connections, random.Random(99))
    b.manager.initiate("site", RIGHT, LEFT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    live = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(live) == 1 and live[0] is not sa
    assert sa.state is IkeState.DELETED
    assert len(a.of(IkeSaEstablished)) == 2


def test_restart_delay_schedule():
    policy = liveness_policy(restart_base=1, restart_cap=60, restart_jitter=0.5)
    assert restart_delay(0, policy, 0.9) == 0
    assert [restart_delay(n, policy, 0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(3, policy, 0.5) == 3.0


def test_quick_crash_detection_after_the_peer_restarts():
    #   left                                  right (restarted: SA state lost, secret kept)
    #   INFORMATIONAL HDR, SK {} (probe) -->
    #          <-- HDR, N(INVALID_IKE_SPI), N(QUICK_CRASH_DETECTION, token)  (unprotected)
    #   verdict at once, not after dpd_timeout
    from ikepulse.core.sa_manager import SaManager

    policy = liveness_policy(
        dpd_delay=10, dpd_timeout=20, dpd_action=DpdAction.CLEAR, first_check_spread=0
    )  # the first probe exactly at dpd_delay
    secret = b"s" * 32
    a, b = make_peers({"liveness": policy}, {"liveness": liveness_policy(dpd_delay=0)})
    a.manager.qcd_secret = b"a" * 32
    b.manager.qcd_secret = secret
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert sa.peer_qcd_token is not None
    b.manager = SaManager(b.manager.connections, random.Random(5), qcd_secret=secret)
    run_until_idle(a, b, clock, until=clock.now + 60)
    (dead,) = a.of(PeerDead)
    assert "QCD" in dead.reason
    assert dead.detected_after == pytest.approx(10, abs=0.01)  # the first probe's answer


def test_forged_crash_report_without_the_token_is_ignored():
    from ikepulse.core.sa_manager import SaManager

    policy = liveness_policy(dpd_delay=10, dpd_timeout=20, dpd_action=DpdAction.CLEAR)
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=0))
    b.manager = SaManager(b.manager.connections, random.Random(5))  # another secret
    run_until_idle(a, b, clock, until=clock.now + 60)
    (dead,) = a.of(PeerDead)
    assert "QCD" not in dead.reason
    assert dead.detected_after == pytest.approx(30, abs=0.01)  # the full budget
    assert a.manager.counters["dropped_unauthenticated"] >= 1


def test_invalid_spi_report_makes_the_peer_recover_at_once():
    #   right lost its CHILD SA; ESP from left arrives with an SPI right does not know:
    #          <-- INFORMATIONAL HDR, SK {N(INVALID_SPI, spi)}
    #   left drops the IKE SA and (dpd_action = restart) establishes a new one at once
    policy = liveness_policy(dpd_delay=30, dpd_timeout=10, dpd_action=DpdAction.RESTART)
    a, b, sa, clock = established(policy, liveness_policy(dpd_delay=0))
    (peer,) = b.manager.sas.values()
    (lost,) = peer.children
    peer.children.remove(peer.children.entry(lost), by_peer=False)
    b.manager.esp_unknown_spi(lost.spi_in, LEFT[0], clock.now)
    b.manager.esp_unknown_spi(lost.spi_in, LEFT[0], clock.now)  # rate-limited
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert b.manager.counters["invalid_spi_reports_sent"] == 1
    (dead,) = a.of(PeerDead)
    assert "INVALID_SPI" in dead.reason and dead.detected_after < 0.01
    assert len(a.of(TunnelRestored)) == 1
    live = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(live) == 1 and len(live[0].children) == 1


def test_a_restart_behind_a_nat_starts_over_on_the_ike_port():
    """Behind a NAT the IKE SA floated to port 4500 (RFC 7296 §2.23); its restart begins
    a new IKE_SA_INIT from and to port 500 (no non-ESP marker there), not from 500 to 4500,
    where the peer would read the message as ESP."""
    policy = liveness_policy(dpd_delay=2, dpd_timeout=3, dpd_action=DpdAction.RESTART)
    quick = retransmit_policy(timeout=1.0, base=1.0, tries=0)
    a, b, sa, clock = established(policy, retransmit=quick, left_public="192.0.2.99")
    assert sa.local[1] == sa.remote[1] == 4500
    outage_end = clock.now + 10
    run_until_idle(a, b, clock, drop=lambda d: clock.now < outage_end, until=outage_end + 60)
    restart_inits = [
        d for d in a.sent if not d.keepalive and decode_message(d.data).exchange
        == ExchangeType.IKE_SA_INIT
    ][1:]  # fmt: skip
    assert restart_inits and all(d.src[1] == d.dst[1] == 500 for d in restart_inits)
    (restored,) = a.of(TunnelRestored)
    live = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(live) == 1 and live[0].nat_local and live[0].udp_encap


def test_esp_going_out_on_the_flow_spares_its_keepalives():
    """ESP-in-UDP refreshes the NAT mapping as well as IKE does: while a CHILD SA sends,
    its flow needs no keepalive; once it stops, they resume at the interval."""
    a, b = many_tunnels(1, liveness=liveness_policy(dpd_delay=0, nat_keepalive=20))
    a.public = "192.0.2.99"
    b.manager.connections = [replace(c, remote_addrs=(a.public,)) for c in b.manager.connections]
    clock = Clock()
    sa = a.manager.initiate("t0", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (spi_in,) = sa.children.spis_in()
    start = clock.now
    for step in range(1, 21):  # 100 s of outbound ESP, its times fed in every 5 s
        run_until_idle(a, b, clock, until=start + 5 * step)
        clock.now = start + 5 * step
        a.manager.esp_activity([(spi_in, None, clock.now, None)])
    assert b.keepalives_received == 0
    run_until_idle(a, b, clock, until=clock.now + 100.5)
    assert 100 / 20 - 1 <= b.keepalives_received <= 100 / 20 + 1
