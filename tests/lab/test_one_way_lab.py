"""Paths broken in one direction, and NAT remaps, against a real strongSwan.

One-way loss:
  left 198.51.100.1 (ikepulse, dpd 2s/3s)  --X  right 198.51.100.2 (strongSwan)
  everything left sends is dropped; what right sends (its ESP, its liveness requests) still
  arrives. Only an answer to one of left's requests proves left's direction.

NAT remap:
  left 192.0.2.2 -- nat (masquerade) -- right 198.51.100.2
  the NAT forgets its mappings and picks another public port while a ping flows.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time

import pytest

from ikepulse.testing.lab import ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

DPD = 'dpd_delay = "2s"\ndpd_timeout = "3s"\ndpd_action = "clear"\n'
BUDGET = 5.0
SLACK = 1.0
"""Timer, sweep (0.25 s) and process scheduling on a loaded machine."""
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from")


def connection_status(daemon) -> dict:
    return json.loads(daemon.cli("status", "--json").stdout)["connections"][0]


def verdict(daemon, since: float) -> tuple[dict, float]:
    wait_for(lambda: connection_status(daemon)["last_death"], 15, "the verdict")
    return connection_status(daemon)["last_death"], time.monotonic() - since


def flood_ping(lab, ns, target: str, seconds: int):
    """Ten pings a second for ``seconds``, each reply logged with its time (ping -D)."""
    log = lab.workdir / f"ping-{ns.name}-{target}.log"
    cmd = ["ping", "-D", "-n", "-i", "0.1", "-W", "1", "-w", str(seconds), target]
    return ns.popen(cmd, log), log


def longest_gap(log) -> float:
    """The longest time between two consecutive replies in a ping -D log."""
    times = [float(m[1]) for line in log.read_text().splitlines() if (m := REPLY.match(line))]
    assert len(times) > 10, log.read_text()[-500:]
    return max(b - a for a, b in itertools.pairwise(times))


def outage_around_a_remap(lab) -> float:
    """The longest ping outage from the left site while the NAT remaps left."""
    pinger, log = flood_ping(lab, lab.left_site, "203.0.113.66", 8)
    time.sleep(2)
    lab.remap_nat()
    pinger.wait(timeout=15)
    return longest_gap(log)


def test_our_packets_lost_while_the_peers_esp_arrives(lab):
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=DPD))
    daemon.cli("up", "lab")
    flood_ping(lab, lab.right_site, "203.0.113.2", 20)  # the remote site pings us
    time.sleep(1)
    lab.drop_sent(lab.left)
    death, elapsed = verdict(daemon, time.monotonic())
    print(f"one-way loss, ESP arriving: declared after {elapsed:.2f}s", file=sys.stderr)
    assert death["direction"] == "outbound" and "stopped reaching the peer" in death["reason"]
    assert death["detected_after"] <= BUDGET + 0.05
    assert elapsed <= BUDGET + SLACK


def test_our_answers_lost_while_the_peers_liveness_requests_arrive(lab):
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr, extra="dpd_delay = 1s")
    )
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=DPD))
    daemon.cli("up", "lab")
    time.sleep(1.5)
    lab.drop_sent(lab.left)
    death, elapsed = verdict(daemon, time.monotonic())
    print(f"one-way loss, peer's checks arriving: declared after {elapsed:.2f}s", file=sys.stderr)
    assert death["direction"] == "outbound"
    assert death["detected_after"] <= BUDGET + 0.05
    # The first answer lost comes at most strongSwan's dpd_delay after the drop starts.
    assert elapsed <= 1.0 + BUDGET + SLACK


@pytest.mark.parametrize("mobike", [True, False], ids=["mobike", "no-mobike"])
def test_nat_remap_with_traffic_flowing_is_repaired_within_two_seconds(nat_lab, mobike):
    """Default dpd_delay (30 s): the on-demand check, not the routine one, repairs it."""
    lab = nat_lab
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr="%any", mobike=mobike))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
    daemon.cli("up", "lab")
    old_port = charon.list_sas()[0]["remote-port"]
    outage = outage_around_a_remap(lab)
    print(f"NAT remap, traffic flowing, mobike={mobike}: outage {outage:.2f}s", file=sys.stderr)
    assert outage < 2.0
    (theirs,) = charon.list_sas()
    assert theirs["remote-port"] != old_port and 20000 <= int(theirs["remote-port"]) <= 20999
    assert daemon.status()[0]["liveness"]["state"] == "alive"


def test_nat_remap_while_idle_is_repaired_by_the_first_packets(nat_lab):
    lab = nat_lab
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr="%any", mobike=True))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
    daemon.cli("up", "lab")
    lab.remap_nat()
    time.sleep(3)  # idle: nothing goes out, nothing notices
    started = time.time()
    pinger, log = flood_ping(lab, lab.left_site, "203.0.113.66", 4)
    pinger.wait(timeout=10)
    first = next(float(m[1]) for line in log.read_text().splitlines() if (m := REPLY.match(line)))
    print(f"NAT remap while idle: first reply {first - started:.2f}s", file=sys.stderr)
    assert first - started < 2.0


def test_the_peer_behind_a_remapped_nat_is_followed_from_its_esp(nat_lab):
    """strongSwan behind the NAT initiates (no MOBIKE, no DPD: it never tells us); its ESP
    from the new port is what moves ikepulse's side."""
    lab = nat_lab
    charon = lab.charon(lab.left)
    charon.start(swanctl_conf(side="left", local_addr=lab.left_addr, remote_addr=lab.right_addr))
    daemon = lab.ikepulse(lab.right)
    daemon.start(ikepulse_conf(side="right", local_addr=lab.right_addr, remote_addr="0.0.0.0/0"))
    charon.swanctl("--initiate", "--child", "lan", timeout=15)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 5, "the CHILD SA")
    outage = outage_around_a_remap(lab)
    print(f"NAT remap in front of the peer: outage {outage:.2f}s", file=sys.stderr)
    assert outage < 2.0
    (sa,) = daemon.status()
    assert 20000 <= sa["remote"]["port"] <= 20999
    assert daemon.counters().get("peer_moved_by_esp", 0) >= 1
