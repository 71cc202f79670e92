"""CHILD SA rekeys against strongSwan under traffic: no packet lost, no duplicate SA.

strongSwan rekeys every 5 s (life_time 30 s), ikepulse every 6 s: both sides initiate rekeys
(CREATE_CHILD_SA with REKEY_SA) while a ping runs at 50 packets/s.
"""

from __future__ import annotations

import pytest

from ikepulse.lab import ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab


def rekeying_tunnel(lab):
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr,
            remote_addr=lab.left_addr,
            child_extra="rekey_time = 5s\n        life_time = 30s",
        )
    )
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    daemon.start(conf.replace('mode = "tunnel"', 'mode = "tunnel"\nrekey_time = "6s"'))
    daemon.cli("up", "lab")
    return charon, daemon


def assert_one_sa_each(charon, daemon) -> None:
    (ours,) = daemon.status()
    assert ours["state"] == "ESTABLISHED" and len(ours["children"]) == 1

    def settled():
        sas = charon.list_sas()
        return len(sas) == 1 and [c["state"] for c in sas[0]["children"]] == ["INSTALLED"]

    wait_for(settled, 10, "strongSwan to settle on one CHILD SA")
    (theirs,) = charon.list_sas()
    assert theirs["children"][0]["spi-in"] == daemon.status()[0]["children"][0]["spi_out"]


def test_two_minutes_of_rekeys_lose_no_packet(lab):
    charon, daemon = rekeying_tunnel(lab)
    result = lab.left_site.run(
        "ping",
        "-q",
        "-i",
        "0.02",
        "-c",
        "6000",
        "-W",
        "1",
        "203.0.113.66",
        check=False,
        timeout=200,
    )
    assert " 0% packet loss" in result.stdout, result.stdout
    log = daemon.log.read_text()
    ours = log.count("sending CREATE_CHILD_SA request")
    theirs = log.count("received CREATE_CHILD_SA request")
    assert ours >= 5 and ours + theirs >= 15  # rekeys happened, on our initiative at least
    assert_one_sa_each(charon, daemon)


def test_rekeys_under_iperf3_lose_no_packet(lab):
    charon, daemon = rekeying_tunnel(lab)
    server = lab.right_site.popen(
        ["iperf3", "-s", "-1", "-B", "203.0.113.66"], lab.workdir / "iperf.log"
    )
    try:
        iperf = lab.left_site.popen(
            # 100 Mbit/s, well below the tunnel's capacity: a lost ping then means a rekey
            # lost it, not a full queue.
            ["iperf3", "-c", "203.0.113.66", "-t", "30", "-b", "100M"],
            lab.workdir / "iperf-client.log",
        )
        result = lab.left_site.run(
            "ping",
            "-q",
            "-i",
            "0.02",
            "-c",
            "1400",
            "-W",
            "1",
            "203.0.113.66",
            check=False,
            timeout=60,
        )
        assert iperf.wait(60) == 0
    finally:
        server.wait(10)
    assert " 0% packet loss" in result.stdout, result.stdout
    assert "sending CREATE_CHILD_SA request" in daemon.log.read_text()
    assert_one_sa_each(charon, daemon)


@pytest.mark.parametrize("who", ["strongswan", "ikepulse"])
def test_ike_sa_rekey_keeps_the_tunnel(lab, who):
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
    daemon.cli("up", "lab")
    (before,) = daemon.status()
    ping = lab.left_site.popen(
        ["ping", "-q", "-i", "0.02", "-c", "150", "-W", "1", "203.0.113.66"],
        lab.workdir / "ping.log",
    )
    if who == "strongswan":
        charon.swanctl("--rekey", "--ike", "lab")
    else:
        daemon.cli("rekey", "lab", "--ike")
    wait_for(
        lambda: (s := daemon.status()) and len(s) == 1 and s[0]["spi_i"] != before["spi_i"],
        10,
        "the rekeyed IKE SA",
    )
    ping.wait(30)
    assert " 0% packet loss" in (lab.workdir / "ping.log").read_text()
    (after,) = daemon.status()
    assert after["children"][0]["spi_in"] == before["children"][0]["spi_in"]
    wait_for(lambda: len(charon.list_sas()) == 1, 5, "strongSwan to drop the old IKE SA")
    (theirs,) = charon.list_sas()
    assert (theirs["initiator-spi"], theirs["responder-spi"]) == (after["spi_i"], after["spi_r"])
    daemon.cli("down", "lab")  # the new IKE SA carries the delete too
    wait_for(lambda: charon.list_sas() == [], 5, "strongSwan to delete the IKE SA")
