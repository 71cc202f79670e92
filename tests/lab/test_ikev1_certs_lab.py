"""IKEv1 Main (and Aggressive) Mode with X.509 certificates against strongSwan (``version = 1``):
RSA_SIG in both roles and ECDSA_384 (its HASH under HMAC-SHA-384 whatever the negotiated
hash, as strongSwan computes it), then a ping through the tunnel. Certificates are made
with strongSwan's ``pki`` tool.

left 198.51.100.1 (ikepulse)  <-- veth -->  right 198.51.100.2 (strongSwan)

    MM1..MM4 (MM4 with CR), MM5 = IDii, CERT, SIG_I, CR; MM6 = IDir, CERT, SIG_R; QM1..QM3
    AM1 = SA, KE, Ni, IDii, CR; AM2 = SA, KE, Nr, IDir, CERT, SIG_R, CR; AM3* = CERT, SIG_I
"""

from __future__ import annotations

import pytest
from test_dataplane import ping

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, ikepulse_conf, swanctl_conf, wait_for
from ikepulse.testing.lab_pki import (
    LabPki,
    ikepulse_auth,
    ikepulse_with_certs,
    install_for_charon,
    swanctl_auth,
    swanctl_with_certs,
)

pytestmark = pytest.mark.lab

LEFT_DN, RIGHT_DN = "C=CH, O=lab, CN=left", "C=CH, O=lab, CN=right"
IKE, ESP = "aes256-sha256-modp2048", "aes256-sha256"


def start(lab, kind: str, aggressive: bool = False):
    """strongSwan on the right and ikepulse on the left, IKEv1 with ``kind`` certificates
    from one CA both trust."""
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA", kind)
    left = pki.issue(ca, "left", LEFT_DN, kind)
    right = pki.issue(ca, "right", RIGHT_DN, kind)
    charon = lab.charon(lab.right)
    install_for_charon(charon.workdir, [right], [ca.cert])
    conf = swanctl_conf(
        local_addr=lab.right_addr,
        remote_addr=lab.left_addr,
        proposals=IKE,
        esp_proposals=ESP,
        local_ts=RIGHT_NET,
        remote_ts=LEFT_NET,
        version=1,
        aggressive=aggressive,
    )
    charon.start(swanctl_with_certs(conf, swanctl_auth(right, LEFT_DN)))
    daemon = lab.ikepulse(lab.left)
    lines, secrets = ikepulse_auth([left], RIGHT_DN, [ca.cert])
    conf = ikepulse_conf(
        local_addr=lab.left_addr,
        remote_addr=lab.right_addr,
        proposals=IKE,
        esp_proposals=ESP,
        local_ts=LEFT_NET,
        remote_ts=RIGHT_NET,
        version=1,
        aggressive=aggressive,
    )
    daemon.start(ikepulse_with_certs(conf, lines, secrets))
    return charon, daemon


def established(lab, charon, daemon) -> dict:
    def both():
        ours = [s for s in daemon.status() if s["state"] == "ESTABLISHED" and s["children"]]
        theirs = [s for s in charon.list_sas() if s["state"] == "ESTABLISHED"]
        return ours and theirs and theirs[0]["children"] and (ours[0], theirs[0])

    ours, theirs = wait_for(both, 10, "ISAKMP and IPsec SA on both sides")
    assert theirs["version"] == "1"
    assert ours["spi_i"] == theirs["initiator-spi"] and ours["spi_r"] == theirs["responder-spi"]
    assert ours["remote_id"] == RIGHT_DN
    assert ours["peer_certificate"]["subject"] == RIGHT_DN
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0
    return ours


def run(lab, kind: str, initiator: str, aggressive: bool = False) -> tuple[dict, str, str]:
    charon, daemon = start(lab, kind, aggressive)
    if initiator == "ikepulse":
        daemon.cli("up", "lab", "--timeout", "10")
    else:
        charon.swanctl("--initiate", "--child", "lan", "--timeout", "10")
    ours = established(lab, charon, daemon)
    return ours, charon.log.read_text(), daemon.log.read_text()


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
def test_main_mode_rsa_certificates_both_roles(lab, initiator):
    ours, charon_log, daemon_log = run(lab, "rsa2048", initiator)
    assert ours["initiator"] == (initiator == "ikepulse")
    assert f"authentication of '{LEFT_DN}' with RSA_EMSA_PKCS1_NULL successful" in charon_log
    assert f'received end entity cert "{LEFT_DN}"' in charon_log
    assert f"{RIGHT_DN} authenticated with RSA_SIG" in daemon_log


def test_main_mode_ecdsa384_ikepulse_initiates(lab):
    ours, charon_log, daemon_log = run(lab, "ecdsa384", "ikepulse")
    assert f"authentication of '{LEFT_DN}' with ECDSA_WITH_NULL successful" in charon_log
    assert f"{RIGHT_DN} authenticated with ECDSA_384" in daemon_log


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
def test_aggressive_mode_rsa_certificates_both_roles(lab, initiator):
    """Aggressive Mode with signatures needs no opt-in on strongSwan (only PSK does)."""
    ours, charon_log, daemon_log = run(lab, "rsa2048", initiator, aggressive=True)
    assert ours["initiator"] == (initiator == "ikepulse")
    assert "AGGRESSIVE" in charon_log
    assert f"authentication of '{LEFT_DN}' with RSA_EMSA_PKCS1_NULL successful" in charon_log
    assert f"{RIGHT_DN} authenticated with RSA_SIG" in daemon_log
