"""The sans-IO core at scale: N tunnels between two in-memory SA managers (no sockets, no
root, fake clock), one connection per tunnel with its own identities and selectors.

    .venv/bin/python bench/scale_core.py [--tunnels 1000 10000] [--idle-minutes 5]

Per N: bring-up time (IKE_SA_INIT + IKE_AUTH with one CHILD SA each, initiated in
batches of ``BATCH``), CPU time of simulated idle minutes with dpd_delay 30 s and NAT-T
keepalives every 20 s (left is behind a NAT) — both managers together, in one process:
each side's share is about half — how many SA timer wake-ups that took, and the time of
``status`` for every IKE SA, in the core and through a daemon's control socket and the
CLI (bench/control_path.py). Long-lived objects are frozen after each batch as the daemon's
loop does (runtime/gc_steward.py). Writes bench/results/scale_core.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import replace

from control_path import control_path
from ikepulse.config.build import liveness_policy
from ikepulse.runtime.gc_steward import GcSteward
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, Peer, many_tunnels, transfer
from results_file import write_results

POLICY = dict(dpd_delay=30.0, dpd_timeout=15.0, nat_keepalive=20.0)
NAT_PUBLIC = "192.0.2.200"
BATCH = 500
"""Tunnels initiated at once, each batch run to completion: a responder evicts the oldest
of more than ``half_open_limit`` (1,000) half-open SAs, and the evicted would only come up
on a retransmission, seconds later, in the idle phase."""
TIME_BUDGET = 600.0
"""Seconds one N may take in all; a run over it stops and says so."""


def tunnels(n: int, seed: int = 1) -> tuple[Peer, Peer]:
    """``n`` tunnels, left behind a NAT (so NAT-T keepalives are due); right names the
    NAT's address as its peer (a known gateway, not held to the per-source flood limits)."""
    a, b = many_tunnels(n, seed, liveness=liveness_policy(**POLICY))
    a.public = NAT_PUBLIC
    b.manager.connections = [replace(c, remote_addrs=(NAT_PUBLIC,)) for c in b.manager.connections]
    return a, b


def step(a: Peer, b: Peer, clock: Clock, until: float) -> bool:
    """Move datagrams, else fire the next timer if it is before ``until``; False when idle."""
    if transfer(a, b, clock) + transfer(b, a, clock):
        return True
    timers = [t for t in (a.manager.get_timer(), b.manager.get_timer()) if t is not None]
    if not timers or min(timers) > until:
        return False
    clock.now = max(clock.now, min(timers))
    a.manager.handle_timer(clock.now)
    b.manager.handle_timer(clock.now)
    return True


def drain(*peers: Peer) -> None:
    for peer in peers:
        while peer.manager.next_event() is not None:
            pass
        peer.sent.clear()
        peer.sent_at.clear()


def run(n: int, idle_minutes: float) -> dict:
    a, b = tunnels(n)
    clock = Clock()
    deadline = time.monotonic() + TIME_BUDGET
    steward = GcSteward(clock.now, Counter())  # as a daemon's loop freezes after bring-ups
    steward.settle()
    start = time.perf_counter()
    for first in range(0, n, BATCH):
        for i in range(first, min(n, first + BATCH)):
            a.manager.initiate(f"t{i}", LEFT, RIGHT, clock.now)
        while step(a, b, clock, clock.now + 0.001) and time.monotonic() < deadline:
            drain(a, b)
        steward.observe(len(a.manager.sas) + len(b.manager.sas), clock.now)
    bring_up = time.perf_counter() - start
    up = sum(sa.state.name == "ESTABLISHED" for sa in a.manager.sas.values())
    drain(a, b)
    counters = [dict(p.manager.counters) for p in (a, b)]
    cpu = time.process_time()
    until = clock.now + idle_minutes * 60
    ticks = 0
    while step(a, b, clock, until) and time.monotonic() < deadline:
        ticks += 1
        drain(a, b)
    idle_cpu = time.process_time() - cpu
    probes = [
        p.manager.counters["timer_wakeups"] - c.get("timer_wakeups", 0)
        for p, c in zip((a, b), counters, strict=True)
    ]
    keepalives = a.manager.counters["natt_keepalives_sent"] - counters[0].get(
        "natt_keepalives_sent", 0
    )
    still_up = sum(sa.state.name == "ESTABLISHED" for sa in a.manager.sas.values())
    status_times = []
    for _ in range(2):  # the first writes every selector's text; later ones find it kept
        start = time.perf_counter()
        status = a.manager.status(0.0, lambda spi: {})
        status_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    json.dumps(status)
    json_time = time.perf_counter() - start
    daemon = control_path(a.manager)
    return {
        "tunnels": n,
        "established": up,
        "bring_up_seconds": round(bring_up, 3),
        "tunnels_per_second": round(up / bring_up, 1),
        "idle_minutes": idle_minutes,
        "idle_cpu_seconds": round(idle_cpu, 3),
        "idle_cpu_percent_of_a_core": round(100 * idle_cpu / (idle_minutes * 60), 3),
        "idle_timer_rounds": ticks,
        "idle_sa_timer_wakeups": {"left": probes[0], "right": probes[1]},
        "idle_natt_keepalives": keepalives,
        "established_after_idle": still_up,
        "status_ike_sas": len(status),
        "status_seconds": round(status_times[0], 4),
        "status_again_seconds": round(status_times[1], 4),
        "status_json_encode_seconds": round(json_time, 4),
        "daemon": daemon,
        "gc_freezes": steward.counters["gc_freezes"],
        "timed_out": time.monotonic() >= deadline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tunnels", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--idle-minutes", type=float, default=5.0)
    args = parser.parse_args()
    results = []
    for n in args.tunnels:
        r = run(n, args.idle_minutes)
        results.append(r)
        print(
            f"{n:6d} tunnels: up {r['established']} in {r['bring_up_seconds']:.2f}s "
            f"({r['tunnels_per_second']:.0f}/s); idle {args.idle_minutes:g} min: "
            f"{r['idle_cpu_seconds']:.2f}s CPU, both sides ({r['idle_cpu_percent_of_a_core']:.2f}% "
            f"of a core), {r['idle_timer_rounds']} timer rounds, SA wake-ups "
            f"{r['idle_sa_timer_wakeups']}, {r['idle_natt_keepalives']} keepalives; "
            f"status of {r['status_ike_sas']} IKE SAs {1000 * r['status_seconds']:.0f} ms "
            f"(again {1000 * r['status_again_seconds']:.0f} ms, JSON "
            f"{1000 * r['status_json_encode_seconds']:.0f} ms); daemon status "
            f"{1000 * r['daemon']['daemon_status_seconds']:.0f} ms, over its socket "
            f"{1000 * r['daemon']['control_round_trip_seconds']:.0f} ms, as text "
            f"{1000 * r['daemon']['daemon_text_seconds']:.0f} ms, over its socket "
            f"{1000 * r['daemon']['control_text_round_trip_seconds']:.0f} ms, CLI processes "
            f"{r['daemon']['cli_process_seconds']} s" + (" (TIMED OUT)" if r["timed_out"] else "")
        )
    meta = {"policy": POLICY, "idle_minutes": args.idle_minutes, "budget_s": TIME_BUDGET}
    write_results("scale_core", meta, runs=results)


if __name__ == "__main__":
    main()
