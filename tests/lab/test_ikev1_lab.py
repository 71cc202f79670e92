"""IKEv1 against a real strongSwan (charon ``version = 1``, kernel-libipsec) in namespaces.

left 198.51.100.1 (ikepulse)  <-- veth -->  right 198.51.100.2 (strongSwan)
lsite 203.0.113.2 -- left == ESP in UDP 4500 == right -- rsite 203.0.113.66

    MM1..MM6 (PSK), QM1..QM3 with or without PFS, Informational DPD and Delete.
"""

from __future__ import annotations

import pytest
from test_dataplane import ping, transfer
from test_rekey_lab import ping_through

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, ikepulse_conf, swanctl_conf, wait_for
from ikepulse.testing.lab_configs import AGGRESSIVE_PSK_RESPONDER

pytestmark = pytest.mark.lab

SUITES = [
    ("aes256-sha256-modp2048", "aes256-sha256"),
    ("aes128-sha1-modp2048", "aes128-sha1"),
    ("aes256-sha384-ecp384", "aes256gcm16-x25519"),
]


def start_v1(
    lab,
    *,
    ike="aes256-sha256-modp2048",
    esp="aes256-sha256",
    aggressive=False,
    charon_psk=None,
    charon_ike=None,
    charon_extra="",
    ikepulse_extra="",
    dpd=("", ""),
    child_extra_charon="",
    child_extra_ours="",
):
    """strongSwan on the right, ikepulse on the left, both IKEv1; ``dpd``: strongSwan's
    (dpd_delay, dpd_timeout) or empty for none."""
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr,
            remote_addr="%any" if lab.nat else lab.left_addr,
            proposals=charon_ike or ike,
            esp_proposals=esp,
            local_ts=RIGHT_NET,
            remote_ts=LEFT_NET,
            version=1,
            aggressive=aggressive,
            extra=charon_extra,
            child_extra=child_extra_charon,
            dpd_delay=dpd[0] or None,
            dpd_timeout=dpd[1] or None,
            **({"secret": charon_psk} if charon_psk else {}),
        ),
        charon_options=AGGRESSIVE_PSK_RESPONDER if aggressive else "",
    )
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(
        local_addr=lab.left_addr,
        remote_addr=lab.right_addr,
        proposals=ike,
        esp_proposals=esp,
        local_ts=LEFT_NET,
        remote_ts=RIGHT_NET,
        version=1,
        aggressive=aggressive,
        extra=ikepulse_extra,
    )
    daemon.start(conf.replace('mode = "tunnel"', f'mode = "tunnel"\n{child_extra_ours}'))
    return charon, daemon


def assert_agree(charon, daemon, ike: str):
    """One ISAKMP SA and one IPsec SA pair, same cookies and SPIs on both sides."""
    (ours,) = [sa for sa in daemon.status() if sa["state"] == "ESTABLISHED"]
    (theirs,) = charon.list_sas()
    assert theirs["version"] == "1" and theirs["state"] == "ESTABLISHED"
    assert ours["spi_i"] == theirs["initiator-spi"]
    assert ours["spi_r"] == theirs["responder-spi"]
    assert ours["proposal"] == ike
    (child,) = ours["children"]
    (their_child,) = theirs["children"]
    assert child["spi_in"] == their_child["spi-out"]
    assert child["spi_out"] == their_child["spi-in"]
    assert child["local_ts"] == their_child["remote-ts"] == [LEFT_NET]
    return ours, theirs


def assert_pings(lab):
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0


@pytest.mark.parametrize(("ike", "esp"), SUITES, ids=[s[0] for s in SUITES])
def test_main_mode_ikepulse_initiates(lab, ike, esp):
    charon, daemon = start_v1(lab, ike=ike, esp=esp)
    daemon.cli("up", "lab")
    ours, _ = assert_agree(charon, daemon, ike)
    assert ours["initiator"] and ours["version"] == 1
    assert_pings(lab)


@pytest.mark.parametrize(("ike", "esp"), SUITES, ids=[s[0] for s in SUITES])
def test_main_mode_strongswan_initiates(lab, ike, esp):
    charon, daemon = start_v1(lab, ike=ike, esp=esp)
    charon.swanctl("--initiate", "--child", "lan", timeout=30)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the IPsec SA")
    ours, _ = assert_agree(charon, daemon, ike)
    assert not ours["initiator"]
    assert_pings(lab)


@pytest.mark.parametrize("ikepulse_initiates", [True, False], ids=["ikepulse", "strongswan"])
def test_aggressive_mode_both_roles(lab, ikepulse_initiates):
    charon, daemon = start_v1(lab, aggressive=True)
    if ikepulse_initiates:
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan", timeout=30)
        wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the IPsec SA")
    ours, _ = assert_agree(charon, daemon, "aes256-sha256-modp2048")
    assert ours["initiator"] is ikepulse_initiates
    assert "AGGRESSIVE" in charon.log.read_text()
    assert_pings(lab)


@pytest.mark.parametrize("ikepulse_initiates", [True, False], ids=["ikepulse", "strongswan"])
def test_quick_mode_with_pfs_and_tcp_through(lab, ikepulse_initiates):
    charon, daemon = start_v1(lab, esp="aes128-sha1-modp2048", ike="aes128-sha1-modp2048")
    if ikepulse_initiates:
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan", timeout=30)
        wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the IPsec SA")
    ours, theirs = assert_agree(charon, daemon, "aes128-sha1-modp2048")
    assert ours["children"][0]["proposal"] == "aes128-sha1-modp2048"
    assert theirs["children"][0]["dh-group"] == "MODP_2048"
    transfer(lab.left_site, lab.right_site, "203.0.113.66")
    transfer(lab.right_site, lab.left_site, "203.0.113.2")


def test_main_mode_through_nat(nat_lab):
    charon, daemon = start_v1(nat_lab)
    daemon.cli("up", "lab")
    (ours,) = daemon.status()
    assert ours["nat_local"] and ours["local"]["port"] == 4500
    (theirs,) = charon.list_sas()
    assert theirs["nat-remote"] == "yes"
    assert_pings(nat_lab)


def test_wrong_psk_and_proposal_mismatch_give_clear_errors(lab):
    charon, daemon = start_v1(lab, charon_psk="a-different-secret")
    result = daemon.cli("up", "lab", "--timeout", "60", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "pre-shared key" in result.stderr
    assert daemon.status() == []
    # strongSwan initiates with the wrong key: we refuse it and say why.
    charon.swanctl("--initiate", "--child", "lan", "--timeout", "3", check=False)
    wait_for(lambda: "pre-shared key" in daemon.log.read_text(), 10, "our log line")


def test_proposal_mismatch_is_refused_with_no_proposal_chosen(lab):
    charon, daemon = start_v1(lab, charon_ike="aes128-sha1-modp2048")
    result = daemon.cli("up", "lab", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "NO_PROPOSAL_CHOSEN" in result.stderr
    charon.swanctl("--initiate", "--child", "lan", "--timeout", "3", check=False)
    wait_for(lambda: "no proposal" in daemon.log.read_text().lower(), 10, "our log line")


def test_phase2_renewal_under_ping_loses_nothing(lab):
    """We renew the IPsec SAs every 2-3 s with Quick Mode and delete each old pair once
    its successor carries the traffic, while 50 pings/s go through: none is lost. Our
    lifetime matches strongSwan's: proposed shorter, strongSwan adopts it and starts Quick
    Modes of its own within seconds, whose old pairs IKEv1 leaves to expire."""
    charon, daemon = start_v1(
        lab,
        child_extra_charon="rekey_time = 20s\n        life_time = 40s",
        child_extra_ours='rekey_time = "3s"\nrand_time = "1s"\nlife_time = "40s"',
    )
    daemon.cli("up", "lab")
    ping_through(lab, 600, daemon=daemon)
    assert daemon.log.read_text().count("installed") >= 4
    # Renewals go on after the pings; on a slow machine strongSwan's own Quick Modes (whose
    # old pairs nobody deletes) may have taken some of the turns, so wait for our deletes.
    wait_for(
        lambda: charon.log.read_text().count("received DELETE for ESP CHILD_SA") >= 3,
        15,
        "strongSwan to receive our DELETEs of three old IPsec SA pairs",
    )


@pytest.mark.parametrize("renewer", ["ikepulse", "strongswan"])
def test_phase1_renewal_under_ping_loses_nothing(lab, renewer):
    """A new ISAKMP SA every 6 s (IKEv1 cannot rekey phase 1): the IPsec SAs move over and
    traffic never notices."""
    charon, daemon = start_v1(
        lab,
        charon_extra="rekey_time = 6s\n    over_time = 2s" if renewer == "strongswan" else "",
        ikepulse_extra='rekey_time = "6s"\nover_time = "2s"' if renewer == "ikepulse" else "",
    )
    daemon.cli("up", "lab")
    (first,) = daemon.status()
    ping_through(lab, 750, daemon=daemon)

    def one_isakmp_sa_each():
        # Renewals go on every 6 s: take both sides' views between two of them.
        ours, theirs = daemon.status(), charon.list_sas()
        if len(ours) == 1 and len(theirs) == 1 and theirs[0]["initiator-spi"] == ours[0]["spi_i"]:
            return ours[0], theirs[0]

    now, theirs = wait_for(one_isakmp_sa_each, 10, "the old ISAKMP SA to go on both sides")
    assert now["spi_i"] != first["spi_i"]
    assert [c["spi_in"] for c in now["children"]] == [c["spi_in"] for c in first["children"]]
    assert len(theirs["children"]) == 1


def test_both_sides_rekeying_phase2_under_ping_lose_nothing(lab):
    """Both sides renew every 1-2 s (strongSwan's renewals with these settings came that
    often in the lab), so either side starts Quick Modes (whichever draws the earlier
    time), now and then both at once: no ping is lost."""
    charon, daemon = start_v1(
        lab,
        child_extra_charon="rekey_time = 4s\n        rand_time = 2s\n        life_time = 20s",
        child_extra_ours='rekey_time = "2s"\nrand_time = "1s"\nlife_time = "20s"',
    )
    daemon.cli("up", "lab")
    ping_through(lab, 750, daemon=daemon)
    log = charon.log.read_text()
    assert log.count("generating QUICK_MODE request") >= 2  # strongSwan's rekeys (2 each)
    assert log.count("parsed QUICK_MODE request") >= 4  # the first and ours
