"""close_action and exactly one SA against a real strongSwan.

left 198.51.100.1 (ikepulse, close_action = start)  ==  right 198.51.100.2 (strongSwan 5.9)

strongSwan deletes the IKE SA       --> ikepulse initiates a new one with the child
strongSwan deletes the CHILD SA     --> ikepulse creates it again on the same IKE SA
both initiate at once (start_action = start on both, strongSwan unique = no, which keeps
duplicates)                         --> ikepulse deletes the extra; one IKE and one CHILD SA
"""

from __future__ import annotations

import json

import pytest
from test_dataplane import ping

from ikepulse.testing.lab import ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

CLOSE_START = 'mode = "tunnel"\nclose_action = "start"'
QUICK = 'retransmit_timeout = "0.5s"\nretransmit_base = 1.0\nretransmit_tries = 10\n'


def start(lab, *, start_action: str = "none", charon_child: str = "", charon_options: str = ""):
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr, remote_addr=lab.left_addr, child_extra=charon_child
        ),
        charon_options,
    )
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(
        local_addr=lab.left_addr,
        remote_addr=lab.right_addr,
        start_action=start_action,
        extra=QUICK,
    )
    daemon.start(conf.replace('mode = "tunnel"', CLOSE_START))
    return charon, daemon


def ours(daemon) -> list[dict]:
    return [sa for sa in daemon.status() if sa["state"] == "ESTABLISHED"]


def theirs(charon) -> list[dict]:
    return [sa for sa in charon.list_sas() if sa["state"] == "ESTABLISHED"]


def one_sa_each(daemon, charon) -> bool:
    """Exactly one IKE SA with exactly one installed CHILD SA on both sides, the same."""
    mine, peer = ours(daemon), theirs(charon)
    if len(mine) != 1 or len(peer) != 1:
        return False
    children = [c for c in peer[0]["children"] if c["state"] == "INSTALLED"]
    return (
        len(mine[0]["children"]) == 1
        and len(children) == 1
        and mine[0]["spi_i"] == peer[0]["initiator-spi"]
        and mine[0]["children"][0]["spi_out"] == children[0]["spi-in"]
    )


def overlaps(daemon) -> dict:
    return json.loads(daemon.cli("status", "--json").stdout)["connections"][0]["overlaps"]


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
def test_strongswan_deletes_the_ike_sa_and_close_action_start_re_establishes(lab, initiator):
    charon, daemon = start(lab)
    if initiator == "ikepulse":
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan")
    wait_for(lambda: one_sa_each(daemon, charon), 5, "the tunnel")
    (before,) = ours(daemon)
    charon.swanctl("--terminate", "--ike", "lab")
    wait_for(
        lambda: one_sa_each(daemon, charon) and ours(daemon)[0]["spi_i"] != before["spi_i"],
        10,
        "ikepulse to re-establish the IKE SA",
    )
    assert ours(daemon)[0]["initiator"]  # we brought it back
    assert daemon.counters()["close_action_restarts"] == 1
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0
    assert one_sa_each(daemon, charon)


def test_strongswan_deletes_the_child_sa_and_close_action_start_creates_it_again(lab):
    charon, daemon = start(lab)
    daemon.cli("up", "lab")
    wait_for(lambda: one_sa_each(daemon, charon), 5, "the tunnel")
    (before,) = ours(daemon)
    charon.swanctl("--terminate", "--child", "lan")
    wait_for(
        lambda: (
            one_sa_each(daemon, charon)
            and ours(daemon)[0]["children"][0]["spi_in"] != before["children"][0]["spi_in"]
        ),
        10,
        "ikepulse to create the CHILD SA again",
    )
    (after,) = ours(daemon)
    assert after["spi_i"] == before["spi_i"]  # on the same IKE SA
    assert daemon.counters()["close_action_children_created"] == 1
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0


def test_both_sides_initiating_at_once_end_with_one_ike_and_one_child_sa(lab):
    # Both start_action = start, their first IKE_SA_INIT held back until both have sent it:
    # the retransmissions cross, both IKE SAs come up, strongSwan (unique = no) keeps both.
    lab.hold_ike(lab.left)
    lab.hold_ike(lab.right)
    charon, daemon = start(
        lab,
        start_action="start",
        charon_child="start_action = start",
        charon_options="retransmit_timeout = 0.5\nretransmit_base = 1.0\nretransmit_tries = 10",
    )
    wait_for(lambda: "IKE_SA_INIT" in daemon.log.read_text(), 5, "ikepulse to initiate")
    lab.release_ike(lab.left)
    lab.release_ike(lab.right)
    wait_for(lambda: overlaps(daemon)["ike_sas"] == 1, 5, "the duplicate IKE SA")
    wait_for(lambda: one_sa_each(daemon, charon), 6, "one IKE and one CHILD SA on both sides")
    counters = daemon.counters()
    assert counters["duplicate_ike_sas_deleted"] == 1
    assert overlaps(daemon) == {"ike_sas": 0, "child_sas": 0}
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0
    assert one_sa_each(daemon, charon)
