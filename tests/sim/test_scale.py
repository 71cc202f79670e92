"""Many tunnels between two SA managers in memory: the core wakes only the IKE SAs that are
due, tunnels set up together do not probe together, and CHILD SA look-ups follow CHILD SAs
that moved to another IKE SA (IKE rekey, IKEv1 phase 1 renewal). Behaviour, not time: the
speed figures are bench/scale_core.py's."""

from __future__ import annotations

from collections import Counter

import pytest

from ikepulse.config.build import liveness_policy
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import (
    LEFT,
    RIGHT,
    Clock,
    left_host,
    many_tunnels,
    run_until_idle,
)
from ikepulse.wire.enums import ExchangeType
from ikepulse.wire.message import decode_message

DPD = liveness_policy(dpd_delay=30, dpd_timeout=15, nat_keepalive=0)
N = 500
STEPS = 100 * N


def bring_up(n: int, distinct: bool = False, **kw):
    a, b = many_tunnels(n, distinct=distinct, liveness=DPD, **kw)
    clock = Clock()
    sas = [
        a.manager.initiate(f"t{i}", (left_host(i), 500) if distinct else LEFT, RIGHT, clock.now)
        for i in range(n)
    ]
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert all(sa.state is IkeState.ESTABLISHED for sa in sas)
    return a, b, clock, sas


def probe_times(peer, since: float) -> list[float]:
    """When ``peer`` sent a liveness check (an INFORMATIONAL request) after ``since``."""
    return [
        at
        for d, at in zip(peer.sent, peer.sent_at, strict=True)
        if at > since
        and not d.keepalive
        and (m := decode_message(d.data)).exchange == ExchangeType.INFORMATIONAL
        and not m.is_response
    ]


@pytest.fixture(scope="module")
def thousand():
    return bring_up(N)


def test_an_idle_period_wakes_only_the_sas_that_are_due(thousand):
    """500 idle tunnels, dpd_delay 30 s: nothing is due for the first 22.5 s (the earliest
    a first check may come), so no IKE SA is woken; over the next minutes every wake-up is
    one liveness check, not a visit to every SA per event."""
    a, b, clock, _ = thousand
    start = clock.now
    before = [p.manager.counters["timer_wakeups"] for p in (a, b)]
    run_until_idle(a, b, clock, until=start + 22.0, max_steps=STEPS)
    assert [p.manager.counters["timer_wakeups"] for p in (a, b)] == before
    assert not probe_times(a, start) and not probe_times(b, start)
    run_until_idle(a, b, clock, until=start + 150.0, max_steps=STEPS)
    for peer, woken in zip((a, b), before, strict=True):
        wakeups = peer.manager.counters["timer_wakeups"] - woken
        assert wakeups == len(probe_times(peer, start))
    checks = len(probe_times(a, start)) + len(probe_times(b, start))
    assert N * 4 <= checks <= N * 10  # each side checks its tunnels once per dpd_delay
    assert all(sa.state is IkeState.ESTABLISHED for sa in a.manager.sas.values())


def test_tunnels_set_up_together_spread_their_first_checks():
    """All 500 came up in the same instant; their first checks fall over the last quarter
    of dpd_delay, a handful per instant, not 500 in one timer tick."""
    a, b, clock, _ = bring_up(N, seed=7)
    up = clock.now
    run_until_idle(a, b, clock, until=up + 30.0, max_steps=STEPS)
    first = probe_times(a, up) + probe_times(b, up)
    assert len(first) >= N  # every tunnel was checked once by one side at least
    assert min(first) >= up + 0.75 * 30 and max(first) <= up + 30
    assert max(first) - min(first) >= 0.2 * 30
    assert max(Counter(first).values()) <= 5


@pytest.mark.parametrize(
    "version, renew",
    [
        (2, {"ike": True}),  # IKE SA rekey: the CHILD SAs move to the new IKE SA (§2.18)
        (1, {"reauth": True}),  # IKEv1: a new ISAKMP SA takes the IPsec SAs over
    ],
)
def test_child_sa_lookups_follow_children_to_their_new_ike_sa(version, renew):
    """Half the tunnels get a new IKE SA that takes over their CHILD SAs. ESP activity fed
    by inbound SPI then reaches the new IKE SA: fed tunnels send no liveness check, the
    others (the control) do."""
    ike = {} if version == 2 else {"ike": "aes256-sha256-modp2048", "esp": "aes256-sha256"}
    a, b, clock, sas = bring_up(40, distinct=True, version=version, **ike)
    moved = [f"t{i}" for i in range(0, 40, 2)]
    for name in moved:
        assert a.manager.renew(name, clock.now, **renew)[1]
    run_until_idle(a, b, clock, until=clock.now + 5)
    status = [p.manager.status(0.0, lambda spi: {}) for p in (a, b)]
    spis = [
        [
            bytes.fromhex(child["spi_in"])
            for s in side
            if s["connection"] in moved and s["state"] == "ESTABLISHED"
            for child in s["children"]
        ]
        for side in status
    ]
    assert len(spis[0]) == len(spis[1]) == len(moved)
    rekeyed = {s["spi_i"] for s in status[0] if s["state"] == "ESTABLISHED"}
    assert rekeyed.isdisjoint(sa.spi_i.hex() for i, sa in enumerate(sas) if i % 2 == 0)
    start = clock.now
    while clock.now < start + 120:
        for peer, fed in zip((a, b), spis, strict=True):
            peer.manager.esp_activity([(spi, clock.now, None, None) for spi in fed])
        run_until_idle(a, b, clock, until=clock.now + 5)
        clock.now += 5
    for peer in (a, b):
        checked = {
            s["connection"]
            for s in peer.manager.status(0.0, lambda spi: {})
            if s["state"] == "ESTABLISHED" and s["liveness"]["probes_sent"]
        }
        assert checked.isdisjoint(moved)
        assert len(checked) >= 10  # the unfed ones are checked (by one side or both)
