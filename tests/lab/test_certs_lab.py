"""ikepulse and strongSwan authenticate each other with X.509 certificates made by
strongSwan's ``pki`` tool: each key type in both roles, a 3-level chain, and refusals.

left 198.51.100.1 (ikepulse)  <-- veth -->  right 198.51.100.2 (strongSwan)
"""

from __future__ import annotations

import pytest

from ikepulse.testing.lab import ikepulse_conf, swanctl_conf, wait_for
from ikepulse.testing.lab_pki import (
    KINDS,
    LabPki,
    crl,
    ikepulse_auth,
    ikepulse_with_certs,
    install_for_charon,
    swanctl_auth,
    swanctl_with_certs,
)

pytestmark = pytest.mark.lab

LEFT_DN, RIGHT_DN = "C=CH, O=lab, CN=left", "C=CH, O=lab, CN=right"


def start(lab, *, left, right, left_cas, right_cas, left_remote_id=RIGHT_DN,
          right_remote_id=LEFT_DN, pss=False, charon_options="", crls=(),
          revocation="relaxed"):  # fmt: skip
    """strongSwan on the right with ``right`` (list: EE first), trusting ``right_cas``;
    ikepulse on the left with ``left``, trusting ``left_cas``."""
    charon = lab.charon(lab.right)
    install_for_charon(charon.workdir, right, right_cas)
    conf = swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr)
    auth = swanctl_auth(right[0], right_remote_id, pss=pss)
    charon.start(swanctl_with_certs(conf, auth), charon_options)
    daemon = lab.ikepulse(lab.left)
    lines, secrets = ikepulse_auth(left, left_remote_id, left_cas, pss=pss, crls=crls,
                                   revocation=revocation)  # fmt: skip
    conf = ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    daemon.start(ikepulse_with_certs(conf, lines, secrets))
    return charon, daemon


def established(charon, daemon) -> dict:
    def both():
        ours = [s for s in daemon.status() if s["state"] == "ESTABLISHED" and s["children"]]
        theirs = [s for s in charon.list_sas() if s["state"] == "ESTABLISHED"]
        return ours and theirs and (ours[0], theirs[0])

    ours, theirs = wait_for(both, 10, "IKE and CHILD SA on both sides")
    assert ours["spi_i"] == theirs["initiator-spi"] and ours["spi_r"] == theirs["responder-spi"]
    assert theirs["children"][0]["state"] == "INSTALLED"
    return ours


def initiate(initiator: str, charon, daemon) -> None:
    if initiator == "ikepulse":
        daemon.cli("up", "lab", "--timeout", "10")
    else:
        charon.swanctl("--initiate", "--child", "lan", "--timeout", "10")


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_certificates_both_roles(lab, kind, initiator):
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA", kind)
    left = pki.issue(ca, "left", LEFT_DN, kind, san="left.example")
    right = pki.issue(ca, "right", RIGHT_DN, kind, san="right.example")
    pss = kind.endswith("-pss")
    charon, daemon = start(lab, left=[left], right=[right], left_cas=[ca.cert],
                           right_cas=[ca.cert], pss=pss)  # fmt: skip
    initiate(initiator, charon, daemon)
    ours = established(charon, daemon)
    assert ours["remote_id"] == RIGHT_DN
    assert ours["peer_certificate"]["subject"] == RIGHT_DN
    log = charon.log.read_text()
    assert f"authentication of '{LEFT_DN}' with" in log
    method = {"rsa2048-pss": "RSA_EMSA_PSS", "ed25519": "ED25519", "ecdsa384": "ECDSA"}
    if kind in method:  # RFC 7427 signature scheme as strongSwan names it
        assert method[kind] in log.split(f"authentication of '{LEFT_DN}' with")[1][:80]
    daemon_log = daemon.log.read_text()
    assert "authenticated with DIGITAL_SIGNATURE" in daemon_log


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
@pytest.mark.parametrize(
    "kind, method", [("rsa2048", "RSA_SIG"), ("ecdsa384", "ECDSA_SHA384_P384")]
)
def test_classic_methods_with_a_peer_without_rfc7427(lab, kind, method, initiator):
    """strongSwan with ``signature_authentication = no`` announces no hash algorithms:
    both sides sign with the classic method for the key (RFC 7296 §3.8, RFC 4754)."""
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA", kind)
    left = pki.issue(ca, "left", LEFT_DN, kind)
    right = pki.issue(ca, "right", RIGHT_DN, kind)
    charon, daemon = start(lab, left=[left], right=[right], left_cas=[ca.cert],
                           right_cas=[ca.cert],
                           charon_options="signature_authentication = no")  # fmt: skip
    initiate(initiator, charon, daemon)
    established(charon, daemon)
    assert f"authenticated with {method}" in daemon.log.read_text()
    sent = [
        line for line in charon.log.read_text().splitlines() if "generating IKE_SA_INIT" in line
    ]
    assert sent and not any("N(HASH_ALG)" in line for line in sent)


def test_three_level_chain(lab):
    """root -> intermediate -> end entity, each side under an intermediate of its own: each
    sends the intermediate the other lacks (strongSwan's CERTREQ names root and its own)."""
    pki = LabPki(lab.workdir / "pki")
    root = pki.ca("root", "C=CH, O=lab, CN=Root CA", "ecdsa384")
    mid_left = pki.issue(root, "midl", "C=CH, O=lab, CN=Left Intermediate", "ecdsa256", ca=True)
    mid_right = pki.issue(root, "midr", "C=CH, O=lab, CN=Right Intermediate", "rsa2048", ca=True)
    left = pki.issue(mid_left, "left", LEFT_DN, "ecdsa256")
    right = pki.issue(mid_right, "right", RIGHT_DN, "rsa2048")
    charon, daemon = start(lab, left=[left, mid_left], right=[right, mid_right],
                           left_cas=[root.cert], right_cas=[root.cert])  # fmt: skip
    initiate("ikepulse", charon, daemon)
    established(charon, daemon)
    assert 'received issuer cert "C=CH, O=lab, CN=Left Intermediate"' in charon.log.read_text()
    assert "CN=Right Intermediate" in charon.log.read_text().split("sending issuer cert")[1][:80]


def _refused_by_ikepulse(daemon, why: str) -> None:
    wait_for(lambda: why in daemon.log.read_text(), 10, f"ikepulse to log {why!r}")
    assert not [s for s in daemon.status() if s["state"] == "ESTABLISHED"]


def test_untrusted_ca_refused_by_ikepulse(lab):
    """strongSwan's certificate comes from a CA ikepulse does not trust, in both roles."""
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA")
    rogue = pki.ca("rogue", "C=CH, O=rogue, CN=Rogue CA")
    left = pki.issue(ca, "left", LEFT_DN, "ecdsa256")
    right = pki.issue(rogue, "right", RIGHT_DN, "ecdsa256")
    charon, daemon = start(lab, left=[left], right=[right], left_cas=[ca.cert],
                           right_cas=[ca.cert])  # fmt: skip
    charon.swanctl("--initiate", "--child", "lan", "--timeout", "5", check=False)
    _refused_by_ikepulse(daemon, "issuer is not a trusted CA")
    assert "received AUTHENTICATION_FAILED notify error" in charon.log.read_text()
    daemon.cli("up", "lab", "--timeout", "5", check=False)
    wait_for(lambda: daemon.log.read_text().count("issuer is not a trusted CA") >= 2, 10, "2nd")
    assert not [s for s in daemon.status() if s["state"] == "ESTABLISHED"]


def test_untrusted_ca_refused_by_strongswan(lab):
    """ikepulse's certificate comes from a CA strongSwan does not trust."""
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA")
    rogue = pki.ca("rogue", "C=CH, O=rogue, CN=Rogue CA")
    left = pki.issue(rogue, "left", LEFT_DN, "ecdsa256")
    right = pki.issue(ca, "right", RIGHT_DN, "ecdsa256")
    charon, daemon = start(lab, left=[left], right=[right], left_cas=[ca.cert],
                           right_cas=[ca.cert])  # fmt: skip
    daemon.cli("up", "lab", "--timeout", "5", check=False)
    wait_for(lambda: "no trusted ECDSA public key found" in charon.log.read_text(), 10, "refusal")
    wait_for(lambda: "AUTHENTICATION_FAILED" in daemon.log.read_text(), 10, "ikepulse told")
    assert not [s for s in daemon.status() if s["state"] == "ESTABLISHED"]


def test_wrong_id_refused(lab):
    """Valid certificates, but ikepulse expects another peer: strongSwan's IKE_AUTH finds no
    connection at ikepulse, ikepulse's finds no peer config at strongSwan."""
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA")
    left = pki.issue(ca, "left", LEFT_DN, "ecdsa256")
    right = pki.issue(ca, "right", RIGHT_DN, "ecdsa256")
    elsewhere = "C=CH, O=lab, CN=elsewhere"
    charon, daemon = start(lab, left=[left], right=[right], left_cas=[ca.cert],
                           right_cas=[ca.cert], left_remote_id=elsewhere)  # fmt: skip
    charon.swanctl("--initiate", "--child", "lan", "--timeout", "5", check=False)
    _refused_by_ikepulse(daemon, f"no connection for peer identity {RIGHT_DN}")
    assert "received AUTHENTICATION_FAILED notify error" in charon.log.read_text()
    daemon.cli("up", "lab", "--timeout", "5", check=False)
    wait_for(lambda: "no matching peer config found" in charon.log.read_text(), 10, "refusal")
    assert not [s for s in daemon.status() if s["state"] == "ESTABLISHED"]


def test_revoked_certificate_refused_and_strict_revocation(lab):
    """A CRL made by ``pki --signcrl`` revokes strongSwan's certificate; another CRL that does
    not list it lets the same certificate through under ``revocation = strict``."""
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA")
    left = pki.issue(ca, "left", LEFT_DN, "ecdsa256")
    right = pki.issue(ca, "right", RIGHT_DN, "ecdsa256")
    revoked = crl(pki.dir, ca, [right])
    charon, daemon = start(lab, left=[left], right=[right], left_cas=[ca.cert],
                           right_cas=[ca.cert], crls=[revoked], revocation="strict")  # fmt: skip
    daemon.cli("up", "lab", "--timeout", "5", check=False)
    _refused_by_ikepulse(daemon, f"{RIGHT_DN} is revoked")
    daemon.stop()
    good = crl(lab.workdir, ca, [left])  # lists another certificate
    daemon = lab.ikepulse(lab.left, "ikepulse2")
    lines, secrets = ikepulse_auth([left], RIGHT_DN, [ca.cert], crls=[good], revocation="strict")
    conf = ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    daemon.start(ikepulse_with_certs(conf, lines, secrets))
    daemon.cli("up", "lab", "--timeout", "10")
    established(charon, daemon)
