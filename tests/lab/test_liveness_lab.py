"""Liveness against a real strongSwan: blackholes, NAT timeouts, crashes on either side.

left 198.51.100.1 (ikepulse, dpd_delay 2s, dpd_timeout 3s)  ==  right (strongSwan)
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from test_dataplane import ping

from ikepulse.testing.lab import ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

DPD = 'dpd_delay = "2s"\ndpd_timeout = "3s"\n'


def setup(lab, extra: str, start_action: str = "none"):
    charon = lab.charon(lab.right)
    charon_conf = swanctl_conf(
        local_addr=lab.right_addr, remote_addr="%any" if lab.nat else lab.left_addr
    )
    charon.start(charon_conf)
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(
        local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=extra, start_action=start_action
    )
    daemon.start(conf)
    return charon, charon_conf, daemon, conf


def connection_status(daemon) -> dict:
    return json.loads(daemon.cli("status", "--json").stdout)["connections"][0]


@pytest.mark.parametrize("action", ["clear", "restart", "hold"])
def test_blackholed_peer_declared_dead_within_budget(lab, action):
    charon, _, daemon, _ = setup(lab, DPD + f'dpd_action = "{action}"\n')
    daemon.cli("up", "lab")
    lab.blackhole(lab.right)
    started = time.monotonic()
    wait_for(lambda: connection_status(daemon)["last_death"], 10, "the verdict")
    elapsed = time.monotonic() - started
    status = connection_status(daemon)
    death = status["last_death"]
    assert death["detected_after"] <= 5.0 + 0.05  # dpd_delay + dpd_timeout, timer slack
    assert elapsed <= 5.0 + 1.0  # the budget, plus status polling on a loaded machine
    assert death["action"] == action
    sas = daemon.status()
    if action == "clear":
        assert sas == [] and status["liveness"] == "dead"
    elif action == "restart":
        assert status["liveness"] == "restarting"
        assert all(sa["state"] != "ESTABLISHED" for sa in sas)
    else:  # hold: SAs gone, traffic trapped (held, never leaked) and re-negotiating
        assert sas == []
        ping(lab.left_site, "203.0.113.66", count=1)
        assert "triggers negotiation" in daemon.log.read_text()


def test_restart_after_strongswan_crash_restores_traffic_without_duplicates(lab):
    charon, charon_conf, daemon, _ = setup(lab, DPD + 'dpd_action = "restart"\n')
    daemon.cli("up", "lab")
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    charon.stop(signal.SIGKILL)
    charon.start(charon_conf)
    wait_for(lambda: connection_status(daemon)["last_restore"], 30, "the tunnel to come back")
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0
    ours = [sa for sa in daemon.status() if sa["state"] == "ESTABLISHED"]
    theirs = charon.list_sas()
    assert len(ours) == 1 and len(ours[0]["children"]) == 1
    assert len(theirs) == 1 and len(theirs[0]["children"]) == 1
    assert ours[0]["spi_i"] == theirs[0]["initiator-spi"]


def test_ikepulse_killed_and_started_again_restores_the_tunnel(lab):
    charon, _, daemon, conf = setup(lab, DPD, start_action="start")
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the tunnel")
    old_spi = daemon.status()[0]["spi_i"]
    daemon.stop(signal.SIGKILL)
    daemon.start(conf)
    wait_for(
        lambda: (s := daemon.status()) and s[0]["children"] and s[0]["spi_i"] != old_spi,
        10,
        "the new tunnel",
    )
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    # INITIAL_CONTACT made strongSwan drop the IKE SA of the killed daemon: no duplicates.
    wait_for(lambda: len(charon.list_sas()) == 1, 5, "strongSwan to drop the stale IKE SA")
    assert charon.list_sas()[0]["initiator-spi"] == daemon.status()[0]["spi_i"]


@pytest.mark.parametrize(("keepalive", "survives"), [("0s", False), ("5s", True)])
def test_nat_keepalives_keep_the_mapping_alive(nat_lab, keepalive, survives):
    nat = nat_lab.ns("nat")
    nat.run("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=10")
    nat.run("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout_stream=10")
    charon, _, daemon, _ = setup(nat_lab, f'dpd_delay = "0s"\nnat_keepalive = "{keepalive}"\n')
    daemon.cli("up", "lab")
    assert daemon.status()[0]["nat_local"]
    assert ping(nat_lab.left_site, "203.0.113.66", count=1).returncode == 0
    time.sleep(30)  # silence: no traffic, no probes
    result = ping(nat_lab.right_site, "203.0.113.2", count=2)
    assert (result.returncode == 0) == survives
    counters = json.loads(daemon.cli("status", "--json").stdout)["counters"]
    assert (counters.get("natt_keepalives_sent", 0) >= 5) == survives


def test_quick_crash_detection_between_two_ikepulse_daemons(lab):
    # The right daemon is killed and started again (same state_dir, so the same QCD
    # secret): its answer to the left's first probe proves the crash at once, long before
    # the 20 s budget would have run out.
    right = lab.ikepulse(lab.right, "ikepulse-right")
    right_conf = ikepulse_conf(
        side="right",
        local_addr=lab.right_addr,
        remote_addr=lab.left_addr,
        extra='dpd_delay = "0s"\n',
    )
    right.start(right_conf)
    left = lab.ikepulse(lab.left)
    left.start(
        ikepulse_conf(
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            extra='dpd_delay = "2s"\ndpd_timeout = "20s"\ndpd_action = "clear"\n',
        )
    )
    left.cli("up", "lab")
    right.stop(signal.SIGKILL)
    right.start(right_conf)
    started = time.monotonic()
    death = wait_for(lambda: connection_status(left)["last_death"], 10, "the verdict")
    assert "QCD" in death["reason"]
    assert death["detected_after"] < 3.0 and time.monotonic() - started < 3.5
