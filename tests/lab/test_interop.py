"""ikepulse against a real strongSwan (charon + kernel-libipsec) in network namespaces.

left 198.51.100.1 (ikepulse)  <-- veth -->  right 198.51.100.2 (strongSwan)
nat_lab: left 192.0.2.2 -> nat (masquerade to 198.51.100.1) -> right 198.51.100.2
"""

from __future__ import annotations

import signal

import pytest

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

SUITES = [
    ("aes256gcm16-prfsha256-x25519", "aes256gcm16"),
    ("aes128-sha256-modp2048", "aes128-sha256"),
    ("aes256-sha384-ecp384", "aes256-sha384"),
]


def start(
    lab,
    *,
    ike="aes256gcm16-prfsha256-x25519",
    esp="aes256gcm16",
    ikepulse_psk=None,
    charon_psk=None,
    start_action="none",
    dual_stack=False,
):
    """strongSwan on the right, ikepulse on the left; ``dual_stack`` adds the IPv6 site
    networks 2001:db8:1::/64 and 2001:db8:2::/64 to the selectors."""
    v6 = (
        {"left": ",2001:db8:1::/64", "right": ",2001:db8:2::/64"}
        if dual_stack
        else {"left": "", "right": ""}
    )
    nets = {"left": LEFT_NET + v6["left"], "right": RIGHT_NET + v6["right"]}
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr,
            remote_addr="%any" if lab.nat else lab.left_addr,
            proposals=ike,
            esp_proposals=esp,
            local_ts=nets["right"],
            remote_ts=nets["left"],
            **({"secret": charon_psk} if charon_psk else {}),
        )
    )
    daemon = lab.ikepulse(lab.left)
    daemon.start(
        ikepulse_conf(
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            proposals=ike,
            esp_proposals=esp,
            start_action=start_action,
            local_ts=nets["left"],
            remote_ts=nets["right"],
            **({"secret": ikepulse_psk} if ikepulse_psk else {}),
        )
    )
    return charon, daemon


def assert_agree(charon, daemon):
    """Both sides list one IKE SA and one CHILD SA with the same SPIs and selectors."""
    (ours,) = daemon.status()
    (theirs,) = charon.list_sas()
    assert ours["state"] == theirs["state"] == "ESTABLISHED"
    assert ours["spi_i"] == theirs["initiator-spi"]
    assert ours["spi_r"] == theirs["responder-spi"]
    (child,) = ours["children"]
    (their_child,) = theirs["children"]
    assert their_child["state"] == "INSTALLED"
    assert child["spi_in"] == their_child["spi-out"]
    assert child["spi_out"] == their_child["spi-in"]
    assert child["local_ts"] == their_child["remote-ts"] == [LEFT_NET]
    assert child["remote_ts"] == their_child["local-ts"] == [RIGHT_NET]
    assert len(ours["spi_i"]) == 16 and len(child["spi_in"]) == 8
    return ours, theirs


@pytest.mark.parametrize(("ike", "esp"), SUITES, ids=[s[0] for s in SUITES])
def test_ikepulse_initiates(lab, ike, esp):
    charon, daemon = start(lab, ike=ike, esp=esp)
    daemon.cli("up", "lab")
    ours, theirs = assert_agree(charon, daemon)
    assert ours["initiator"] and ours["proposal"] == ike
    assert child_proposal(ours) == esp


@pytest.mark.parametrize(("ike", "esp"), SUITES, ids=[s[0] for s in SUITES])
def test_strongswan_initiates(lab, ike, esp):
    charon, daemon = start(lab, ike=ike, esp=esp)
    charon.swanctl("--initiate", "--child", "lan", timeout=30)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the CHILD SA")
    ours, theirs = assert_agree(charon, daemon)
    assert not ours["initiator"] and ours["proposal"] == ike
    assert child_proposal(ours) == esp


def child_proposal(status: dict) -> str:
    return status["children"][0]["proposal"]


def test_wrong_psk_fails_on_both_sides(lab):
    charon, daemon = start(lab, charon_psk="a-different-secret")
    result = daemon.cli("up", "lab", check=False)
    assert result.returncode != 0
    assert "AUTHENTICATION_FAILED" in result.stderr
    assert "Traceback" not in result.stderr
    assert daemon.status() == []
    wait_for(lambda: charon.list_sas() == [], 5, "strongSwan to drop the half-open SA")
    assert "MAC mismatched" in charon.log.read_text()  # strongSwan rejected our AUTH
    # The other direction: strongSwan authenticates to us with the wrong key.
    out = charon.swanctl("--initiate", "--child", "lan", check=False, timeout=30)
    assert "failed" in out.lower()
    assert "AUTHENTICATION_FAILED" in daemon.log.read_text()
    wait_for(lambda: daemon.status() == [] and charon.list_sas() == [], 5, "no SAs left")


def test_ikepulse_down_deletes_on_strongswan(lab):
    charon, daemon = start(lab)
    daemon.cli("up", "lab")
    assert_agree(charon, daemon)
    daemon.cli("down", "lab")
    assert daemon.status() == []
    wait_for(lambda: charon.list_sas() == [], 5, "strongSwan to delete the IKE SA")


def test_strongswan_delete_is_honoured(lab):
    charon, daemon = start(lab)
    daemon.cli("up", "lab")
    assert_agree(charon, daemon)
    charon.swanctl("--terminate", "--ike", "lab")
    wait_for(lambda: daemon.status() == [], 5, "ikepulse to honour the delete")


def test_strongswan_child_delete_is_honoured(lab):
    charon, daemon = start(lab)
    daemon.cli("up", "lab")
    charon.swanctl("--terminate", "--child", "lan")
    wait_for(lambda: daemon.status()[0]["children"] == [], 5, "the CHILD SA to go")
    assert daemon.status()[0]["state"] == "ESTABLISHED"


def test_sigterm_deletes_on_strongswan(lab):
    charon, daemon = start(lab, start_action="start")
    wait_for(
        lambda: charon.list_sas() and charon.list_sas()[0]["children"],
        10,
        "start_action=start to bring the tunnel up",
    )
    daemon.stop(signal.SIGTERM)
    assert daemon.proc.returncode == 0
    wait_for(lambda: charon.list_sas() == [], 5, "strongSwan to delete the IKE SA")


def test_nat_detected_on_both_sides_and_ike_moves_to_4500(nat_lab):
    charon, daemon = start(nat_lab)
    daemon.cli("up", "lab")
    (ours,) = daemon.status()
    (theirs,) = charon.list_sas()
    assert ours["nat_local"]  # we are behind the NAT
    assert ours["local"]["port"] == 4500 and ours["remote"]["port"] == 4500
    assert theirs.get("nat-remote") == "yes"  # strongSwan sees the NAT in front of us
    assert theirs["remote-host"] == "198.51.100.1"  # the NAT's public address
    assert theirs["remote-port"] != "500"
    assert ours["children"][0]["udp_encap"]
