"""100 tunnels between two ikepulse gateways, the left behind a NAT (so NAT-T keepalives
run), each its own connection with its own identities and selectors (scale_lab.py).

left 192.0.2.2 (ikepulse, t0..t99, dpd_action restart) -- NAT -- right 198.51.100.2 (ikepulse)
"""

from __future__ import annotations

import json
import random
import time

import pytest

from ikepulse.testing.lab import wait_for
from ikepulse.testing.scale_lab import (
    EventRecorder,
    add_hosts,
    blackhole_tunnels,
    ikepulse_tunnels,
    name,
    ping_tunnel,
    up_all,
)

pytestmark = pytest.mark.lab

TUNNELS, DEAD = 100, 10
DPD_DELAY, DPD_TIMEOUT = 3.0, 5.0
BUDGET = DPD_DELAY + DPD_TIMEOUT
LIVENESS = f'dpd_delay = "{DPD_DELAY:g}s"\ndpd_timeout = "{DPD_TIMEOUT:g}s"\n'
RESTART, CLEAR = LIVENESS + 'dpd_action = "restart"\n', LIVENESS + 'dpd_action = "clear"\n'


def gateways(lab):
    right = lab.ikepulse(lab.right)
    right.start(
        ikepulse_tunnels(TUNNELS, side="right", local_addr=lab.right_addr,
                         remote_addr="198.51.100.1", liveness=CLEAR),
        log_level="info",
    )  # fmt: skip
    left = lab.ikepulse(lab.left)
    left.start(
        ikepulse_tunnels(TUNNELS, side="left", local_addr=lab.left_addr,
                         remote_addr=lab.right_addr, liveness=RESTART),
        log_level="info",
    )  # fmt: skip
    return left, right


def test_hundred_tunnels_carry_traffic_and_ten_blackholed_peers_are_detected(nat_lab):
    lab = nat_lab
    left, right = gateways(lab)
    answers = up_all(left.socket, [name(i) for i in range(TUNNELS)], window=8)
    assert [a for a in answers if not a["ok"]] == []

    sample = random.Random(16).sample(range(TUNNELS), 10)
    add_hosts(lab, range(TUNNELS))  # the last check pings three others
    assert [i for i in sample if not ping_tunnel(lab, i)] == []

    sas = left.status()
    assert len(sas) == TUNNELS
    assert {sa["connection"] for sa in sas} == {name(i) for i in range(TUNNELS)}
    assert all(sa["state"] == "ESTABLISHED" and len(sa["children"]) == 1 for sa in sas)
    # behind the NAT (keepalives run), also where the responder asked for a cookie first
    assert [
        sa["connection"] for sa in sas if not (sa["nat_local"] and sa["children"][0]["udp_encap"])
    ] == []

    text = left.cli("status").stdout  # the daemon's own text (runtime/status_text.py)
    assert text.count(": ESTABLISHED, IKEv2, ") == text.count("  liveness ") == TUNNELS
    assert all(f"{sa['spi_i']}_i* {sa['spi_r']}_r" in text for sa in sas)
    assert text.count(" (behind NAT)\n") == TUNNELS and text.endswith("\n")

    by_name = {sa["connection"]: sa for sa in sas}
    dead = {name(i) for i in random.Random(61).sample(range(TUNNELS), DEAD)}
    events = EventRecorder(left.socket).start()
    try:
        blackholed = time.time()
        blackhole_tunnels(lab, lab.right, [by_name[n] for n in sorted(dead)])
        wait_for(lambda: len(events.of("peer-dead")) >= DEAD, BUDGET + 5, "10 verdicts")
        time.sleep(2.0)  # a wrong verdict on a live tunnel would show up now
        deaths = events.of("peer-dead")
    finally:
        events.stop()
    assert {d["connection"] for d in deaths} == dead
    slack = 0.5  # timer slack on a loaded CI machine
    assert all(d["detected_after"] <= BUDGET + slack for d in deaths)
    assert all(d["time"] - blackholed <= BUDGET + slack for d in deaths)

    still = {sa["connection"]: sa for sa in left.status()}
    alive = set(by_name) - dead
    assert all(still[n]["spi_i"] == by_name[n]["spi_i"] for n in alive)
    assert all(still[n]["state"] == "ESTABLISHED" for n in alive)
    connections = json.loads(left.cli("status", "--json").stdout)["connections"]
    assert {c["name"] for c in connections if c["last_death"]} == dead
    assert all(ping_tunnel(lab, int(n[1:])) for n in sorted(alive)[:3])
