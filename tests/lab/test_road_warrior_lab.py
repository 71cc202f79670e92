"""Certificates with the rest of IKE_AUTH, against strongSwan: an RSA-4096 chain that only IKE
fragmentation (RFC 7383) gets through, and the usual road warrior, an EAP-MSCHAPv2 client
of a gateway that proves itself with its certificate (RFC 7296 §2.16).

left 198.51.100.1 (ikepulse)  <-- veth -->  right 198.51.100.2 (strongSwan)
"""

from __future__ import annotations

import pytest
from test_certs_lab import established, initiate
from test_eap_lab import PASSWORD, pings_both_ways, strongswan_client
from test_fragmentation_lab import drop_ip_fragments, ip_fragments_dropped

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, ikepulse_conf, swanctl_conf
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


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
def test_an_rsa4096_chain_gets_through_only_by_ike_fragmentation(lab, initiator):
    """Each side sends its end-entity certificate and intermediate (4096-bit keys): an
    IKE_AUTH message of about 4 KB, while every IP fragment on the path is dropped."""
    pki = LabPki(lab.workdir / "pki")
    root = pki.ca("root", "C=CH, O=lab, CN=Root", "rsa4096")
    inter = pki.issue(root, "inter", "C=CH, O=lab, CN=Intermediate", "rsa4096", ca=True)
    left = pki.issue(inter, "left", LEFT_DN, "rsa4096", san="left.example")
    right = pki.issue(inter, "right", RIGHT_DN, "rsa4096", san="right.example")
    charon = lab.charon(lab.right)
    install_for_charon(charon.workdir, [right, inter], [root.cert])
    conf = swanctl_conf(
        local_addr=lab.right_addr, remote_addr=lab.left_addr, extra="fragmentation = yes"
    )
    charon.start(swanctl_with_certs(conf, swanctl_auth(right, LEFT_DN)), "fragment_size = 1280")
    daemon = lab.ikepulse(lab.left)
    lines, secrets = ikepulse_auth([left, inter], RIGHT_DN, [root.cert])
    conf = ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    daemon.start(ikepulse_with_certs(conf, lines, secrets))
    drop_ip_fragments(lab)
    initiate(initiator, charon, daemon)
    ours = established(charon, daemon)
    assert ours["peer_certificate"]["subject"] == RIGHT_DN
    pings_both_ways(lab)
    assert ip_fragments_dropped(lab) == 0  # nothing needed IP fragmentation
    assert "reassembled fragmented IKE message" in charon.log.read_text()


def test_an_eap_client_of_a_gateway_proven_by_its_certificate(lab):
    #   strongSwan (client carol)                    ikepulse (gateway, ECDSA certificate)
    #   IDi SA TSi TSr CERTREQ                   ->
    #                                            <-  IDr CERT AUTH(ECDSA) EAP(Identity)
    #   EAP rounds (MSCHAPv2), then AUTH(MSK) both ways
    pki = LabPki(lab.workdir / "pki")
    ca = pki.ca("ca", "C=CH, O=lab, CN=Lab CA", "ecdsa256")
    gateway = pki.issue(ca, "left", LEFT_DN, "ecdsa256", san="left.example")
    daemon = lab.ikepulse(lab.left)
    daemon.start(f"""
[connections.rw]
local_addrs = ["{lab.left_addr}"]
local = {{ auth = "pubkey", id = "{LEFT_DN}", certs = ["{gateway.cert}"] }}
remote = {{ auth = "eap-mschapv2", id = "%any", eap_id = "%any" }}
[connections.rw.children.lan]
local_ts = ["{LEFT_NET}"]
remote_ts = ["{RIGHT_NET}"]
[secrets.gateway-key]
private_key = "{gateway.key}"
[secrets.eap-carol]
id = "carol"
secret = "{PASSWORD}"
""")
    local = "      auth = eap-mschapv2\n      eap_id = carol"
    secrets = f'  eap-carol {{\n    id = carol\n    secret = "{PASSWORD}"\n  }}'
    gateway_by_cert = f'      auth = pubkey\n      id = "{LEFT_DN}"'
    charon = strongswan_client(lab, local, secrets, remote=gateway_by_cert, cas=[ca.cert])
    charon.swanctl("--initiate", "--child", "lan", "--timeout", "10")
    (theirs,) = charon.list_sas()
    assert theirs["state"] == "ESTABLISHED" and theirs["remote-id"] == LEFT_DN
    pings_both_ways(lab)
    log = charon.log.read_text()
    assert f"authentication of '{LEFT_DN}' with" in log
    assert "EAP method EAP_MSCHAPV2 succeeded" in log
    assert "EAP-MSCHAPv2 user carol authenticated" in daemon.log.read_text()
