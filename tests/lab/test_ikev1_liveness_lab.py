"""IKEv1 liveness against a real strongSwan (charon ``version = 1``): RFC 3706 DPD both ways.

left 198.51.100.1 (ikepulse, dpd_delay 2s, dpd_timeout 3s)  ==  right 198.51.100.2 (strongSwan)

    blackhole: declared dead within dpd_delay + dpd_timeout, restored when strongSwan is back
    strongSwan's own R-U-THERE answered; busy tunnels probed less than idle ones
    one-way loss (ours dropped, strongSwan's arriving): declared dead, direction outbound
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from test_dataplane import ping
from test_ikev1_lab import assert_agree, start_v1

from ikepulse.testing.lab import wait_for

pytestmark = pytest.mark.lab

IKE = "aes256-sha256-modp2048"
DPD = 'dpd_delay = "2s"\ndpd_timeout = "3s"\n'
BUDGET = 5.0
SLACK = 1.0
"""Timer, sweep and status polling on a loaded machine."""
ROLES = ["ikepulse-initiates", "strongswan-initiates"]


def connection_status(daemon) -> dict:
    return json.loads(daemon.cli("status", "--json").stdout)["connections"][0]


def establish(lab, role: str, *, ikepulse_extra: str = DPD, dpd=("", "")):
    """The tunnel up, initiated by the side ``role`` names; both sides agree on it."""
    charon, daemon = start_v1(lab, ike=IKE, ikepulse_extra=ikepulse_extra, dpd=dpd)
    if role == "ikepulse-initiates":
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan", timeout=30)
        wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the IPsec SA")
    ours, _ = assert_agree(charon, daemon, IKE)
    assert ours["initiator"] == (role == "ikepulse-initiates")
    return charon, daemon


def verdict(daemon, since: float) -> tuple[dict, float]:
    wait_for(lambda: connection_status(daemon)["last_death"], 15, "the verdict")
    return connection_status(daemon)["last_death"], time.monotonic() - since


def answered(daemon) -> int:
    """strongSwan's R-U-THERE we acknowledged."""
    return daemon.counters().get("dpd_requests_answered", 0)


def probes_sent(daemon) -> int:
    return sum(sa["liveness"]["probes_sent"] for sa in daemon.status())


@pytest.mark.parametrize("role", ROLES)
def test_blackholed_strongswan_declared_dead_then_the_tunnel_comes_back(lab, role):
    charon, daemon = establish(lab, role, ikepulse_extra=DPD + 'dpd_action = "restart"\n')
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    lab.blackhole(lab.right)
    started = time.monotonic()
    death, elapsed = verdict(daemon, started)
    print(f"IKEv1 {role}: blackhole declared after {elapsed:.2f}s", file=sys.stderr)
    assert death["detected_after"] <= BUDGET + 0.05
    assert elapsed <= BUDGET + SLACK
    assert death["action"] == "restart" and death["direction"] == "silent"
    assert connection_status(daemon)["liveness"] == "restarting"
    assert all(sa["state"] != "ESTABLISHED" for sa in daemon.status())

    lab.right.run("nft", "delete", "table", "inet", "blackhole")
    back = time.monotonic()
    wait_for(lambda: ping(lab.left_site, "203.0.113.66", count=1).returncode == 0, 30, "traffic")
    print(f"IKEv1 {role}: traffic back {time.monotonic() - back:.2f}s after", file=sys.stderr)
    assert connection_status(daemon)["last_restore"]
    (ours,) = [sa for sa in daemon.status() if sa["state"] == "ESTABLISHED"]
    assert ours["initiator"] and ours["version"] == 1  # restart re-initiates, either role
    assert ping(lab.right_site, "203.0.113.2").returncode == 0
    # INITIAL-CONTACT in MM5 made strongSwan drop its stale ISAKMP SA: one left, ours.
    wait_for(lambda: len(charon.list_sas()) == 1, 5, "strongSwan to drop the stale SA")
    assert charon.list_sas()[0]["initiator-spi"] == ours["spi_i"]


@pytest.mark.parametrize("role", ROLES)
def test_strongswans_r_u_there_is_answered(lab, role):
    """strongSwan (dpd_delay 1s) probes the idle tunnel every second and keeps it: each
    R-U-THERE got its ACK."""
    charon, daemon = establish(lab, role, ikepulse_extra="", dpd=("1s", "3s"))
    (theirs,) = charon.list_sas()
    time.sleep(10)
    (still,) = charon.list_sas()
    assert still["state"] == "ESTABLISHED"
    assert still["initiator-spi"] == theirs["initiator-spi"]
    assert len(still["children"]) == 1
    log = charon.log.read_text()
    acks = len(re.findall(r"parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]", log))
    assert acks >= 5, log[-2000:]
    assert "DPD check timed out" not in log
    assert answered(daemon) >= acks
    assert ping(lab.left_site, "203.0.113.66").returncode == 0


def test_a_busy_tunnel_gets_at_most_one_r_u_there_per_dpd_delay(lab):
    """Inbound ESP proves strongSwan alive but not that our packets reach it, so a busy
    tunnel is still checked (that is what catches one-way loss below), at most once per
    dpd_delay like an idle one; strongSwan, which probes only idle tunnels, sends none.
    (Idle, our check waits until the first ACK we sent to strongSwan's R-U-THERE after our
    last answered check is dpd_delay old: every 2-3 s.)"""
    charon, daemon = establish(lab, "ikepulse-initiates", dpd=("1s", "3s"))
    pinger = lab.left_site.popen(
        ["ping", "-n", "-i", "0.2", "-w", "12", "203.0.113.66"], lab.workdir / "ping.log"
    )
    before, theirs_before = probes_sent(daemon), answered(daemon)
    pinger.wait(timeout=20)
    busy, theirs_busy = probes_sent(daemon) - before, answered(daemon) - theirs_before
    time.sleep(1)
    before, theirs_before = probes_sent(daemon), answered(daemon)
    time.sleep(12)
    idle, theirs_idle = probes_sent(daemon) - before, answered(daemon) - theirs_before
    print(f"IKEv1 R-U-THERE in 12 s: ours idle {idle}, busy {busy}; "
          f"strongSwan's idle {theirs_idle}, busy {theirs_busy}", file=sys.stderr)  # fmt: skip
    assert 3 <= idle <= 12 / 2 + 1
    assert 1 <= busy <= 12 / 2 + 1
    assert theirs_idle >= 4 and theirs_busy <= 2  # one or two as the ping starts
    assert connection_status(daemon)["last_death"] is None
    assert len(charon.list_sas()) == 1


@pytest.mark.parametrize("role", ROLES)
def test_our_packets_lost_while_strongswans_arrive(lab, role):
    """Everything we send is dropped; strongSwan's ESP (its site pings ours) still
    arrives. Only an ACK to our R-U-THERE could prove our direction."""
    _, daemon = establish(lab, role, ikepulse_extra=DPD + 'dpd_action = "clear"\n')
    lab.right_site.popen(
        ["ping", "-n", "-i", "0.1", "-w", "20", "203.0.113.2"], lab.workdir / "ping.log"
    )
    time.sleep(1)
    lab.drop_sent(lab.left)
    death, elapsed = verdict(daemon, time.monotonic())
    print(f"IKEv1 {role}: one-way loss declared after {elapsed:.2f}s", file=sys.stderr)
    assert death["direction"] == "outbound" and "stopped reaching the peer" in death["reason"]
    assert death["detected_after"] <= BUDGET + 0.05
    assert elapsed <= BUDGET + SLACK
