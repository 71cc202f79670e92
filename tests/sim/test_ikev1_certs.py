"""IKEv1 phase 1 with certificates between two in-memory ikepulse peers (RFC 2409 §5.1,
RFC 4754): RSA and ECDSA in Main and Aggressive Mode, and refusals of a certificate from
an untrusted CA or for another identity.

left (initiator)                                 right (responder)
Main Mode
HDR, SA(auth = RSA_SIG | ECDSA_*) -->
                                  <-- HDR, SA
HDR, KE, Ni, NAT-D, NAT-D -->
                                  <-- HDR, KE, Nr, NAT-D, NAT-D, CR
HDR*, IDii, CERT, SIG_I, CR, N(IC) -->
                                  <-- HDR*, IDir, CERT, SIG_R
Aggressive Mode
HDR, SA, KE, Ni, IDii, CR -->
                                  <-- HDR, SA, KE, Nr, IDir, CERT, SIG_R, CR, NAT-D, NAT-D
HDR*, CERT, SIG_I, NAT-D, NAT-D -->
"""

from __future__ import annotations

import random

import pytest

from ikepulse.core.connection import LocalPubkey
from ikepulse.core.events import ChildSaInstalled, IkeSaEstablished, IkeSaFailed
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.core.status import ike_sa_status
from ikepulse.crypto.certs import Revocation, Trust
from ikepulse.testing import pki
from ikepulse.testing.loopback import (
    LEFT,
    LEFT_NET,
    RIGHT,
    RIGHT_NET,
    Clock,
    Peer,
    connection,
    run_until_idle,
)
from ikepulse.wire.isakmp import decode_isakmp
from ikepulse.wire.isakmp_enums import AuthMethodV1, Phase1Attr
from ikepulse.wire.isakmp_sa import SaV1

LEFT_DN, RIGHT_DN = "C=CH, O=test, CN=left.example", "C=CH, O=test, CN=right.example"
V1 = {"version": 1, "ike": "aes256-sha256-modp2048", "esp": "aes256-sha256"}
METHODS = {
    "rsa2048": AuthMethodV1.RSA_SIG,
    "ecdsa256": AuthMethodV1.ECDSA_256,
    "ecdsa384": AuthMethodV1.ECDSA_384,
    "ecdsa521": AuthMethodV1.ECDSA_521,
}


@pytest.fixture(scope="module")
def root():
    return pki.ca("C=CH, O=test, CN=Root CA", "ecdsa256")


def credentials(ca: pki.Issued, dn: str, kind: str, san: str | None = None) -> LocalPubkey:
    issued = ca.issue(dn, pki.new_key(kind), san=[san] if san else [])
    return LocalPubkey((issued.cert,), issued.key, False)


def run(left_cred, right_cred, cas, *, right_cas=None, aggressive=False,
        left_ids=(LEFT_DN, RIGHT_DN), right_ids=(RIGHT_DN, LEFT_DN)):  # fmt: skip
    """left initiates to right; each trusts ``cas`` (right: ``right_cas`` if given)."""
    clock = Clock()
    offset = pki.NOW.timestamp() - clock.now

    def trust(of):
        return Trust(tuple(c.cert for c in of), (), Revocation.RELAXED)

    extra = {**V1, "aggressive": aggressive}
    left = connection(*left_ids, LEFT_NET, RIGHT_NET, local_pubkey=left_cred,
                      remote_trust=trust(cas), **extra)  # fmt: skip
    right = connection(*right_ids, RIGHT_NET, LEFT_NET, local_pubkey=right_cred,
                       remote_trust=trust(right_cas or cas), **extra)  # fmt: skip
    a = Peer(SaManager([left], random.Random(1), wall_offset=offset), LEFT)
    b = Peer(SaManager([right], random.Random(2), wall_offset=offset), RIGHT)
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 30)
    return a, b, sa


def offered_methods(peer: Peer) -> set[int]:
    """The auth methods of the transforms in the first message ``peer`` sent."""
    (sa_payload,) = [p for p in decode_isakmp(peer.sent[0].data).payloads if isinstance(p, SaV1)]
    return {
        a.value
        for t in sa_payload.proposals[0].transforms
        for a in t.attributes
        if a.type == Phase1Attr.AUTH_METHOD
    }


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("kind", list(METHODS))
def test_certificates_establish_in_both_modes(root, kind, aggressive):
    a, b, sa = run(credentials(root, LEFT_DN, kind), credentials(root, RIGHT_DN, kind), [root],
                   aggressive=aggressive)  # fmt: skip
    assert sa.state is IkeState.ESTABLISHED
    assert offered_methods(a) == {METHODS[kind]}
    assert a.of(IkeSaEstablished) and b.of(IkeSaEstablished)
    (mine,) = a.of(ChildSaInstalled)
    (theirs,) = b.of(ChildSaInstalled)
    assert mine.keys == theirs.keys
    status = ike_sa_status(sa, 0.0)
    assert status["version"] == 1
    assert status["remote_id"] == RIGHT_DN
    assert status["peer_certificate"]["subject"] == RIGHT_DN
    (right_sa,) = b.manager.sas.values()
    assert ike_sa_status(right_sa, 0.0)["peer_certificate"]["subject"] == LEFT_DN


def test_fqdn_identity_from_the_subject_alt_name(root):
    a, b, sa = run(
        credentials(root, LEFT_DN, "ecdsa256", san="left.example"),
        credentials(root, RIGHT_DN, "ecdsa256", san="right.example"),
        [root],
        left_ids=("left.example", "right.example"),
        right_ids=("right.example", "left.example"),
    )
    assert sa.state is IkeState.ESTABLISHED
    assert ike_sa_status(sa, 0.0)["remote_id"] == "right.example"


def test_certificate_from_an_untrusted_ca_is_refused(root):
    rogue = pki.ca("C=CH, O=rogue, CN=Rogue CA", "ecdsa256")
    a, b, sa = run(credentials(rogue, LEFT_DN, "rsa2048"), credentials(root, RIGHT_DN, "rsa2048"),
                   [root])  # fmt: skip
    assert sa.state is IkeState.FAILED
    (refused,) = b.of(IkeSaFailed)
    assert f"certificate of {LEFT_DN} refused" in refused.reason
    assert "not a trusted CA" in refused.reason
    (failed,) = a.of(IkeSaFailed)
    assert "AUTHENTICATION_FAILED" in failed.reason
    assert not b.of(IkeSaEstablished)


def test_initiator_refuses_the_responders_untrusted_certificate(root):
    rogue = pki.ca("C=CH, O=rogue, CN=Rogue CA", "ecdsa256")
    a, b, sa = run(credentials(root, LEFT_DN, "ecdsa256"),
                   credentials(rogue, RIGHT_DN, "ecdsa256"), [root],
                   right_cas=[root, rogue])  # fmt: skip
    assert sa.state is IkeState.FAILED
    (failed,) = a.of(IkeSaFailed)
    assert f"certificate of {RIGHT_DN} refused" in failed.reason
    assert not a.of(ChildSaInstalled)


def test_identity_not_in_the_certificate_is_refused(root):
    """left claims an identity its certificate does not name (RFC 4945 §3.1)."""
    impostor = "C=CH, O=test, CN=admin.example"
    a, b, sa = run(credentials(root, LEFT_DN, "ecdsa256"), credentials(root, RIGHT_DN, "ecdsa256"),
                   [root], left_ids=(impostor, RIGHT_DN), right_ids=(RIGHT_DN, None))  # fmt: skip
    assert sa.state is IkeState.FAILED
    (refused,) = b.of(IkeSaFailed)
    assert f"{impostor} is not an identity of its certificate" in refused.reason
    assert not b.of(IkeSaEstablished)


def test_key_types_must_agree_on_the_method(root):
    """IKEv1 has one auth method for both ends: an RSA peer and an ECDSA peer find none."""
    a, b, sa = run(credentials(root, LEFT_DN, "rsa2048"), credentials(root, RIGHT_DN, "ecdsa256"),
                   [root])  # fmt: skip
    assert sa.state is IkeState.FAILED
    (failed,) = a.of(IkeSaFailed)
    assert "NO_PROPOSAL_CHOSEN" in failed.reason
    (refused,) = b.of(IkeSaFailed)
    assert "the peer authenticates with RSA_SIG (3), we with ECDSA_256" in refused.reason


def test_intermediate_ca_goes_with_the_certificate(root):
    """left's certificate comes from an intermediate only left has: it sends it in MM5."""
    mid = root.issue("C=CH, O=test, CN=Intermediate", pki.new_key("ecdsa256"), ca=True)
    left = mid.issue(LEFT_DN, pki.new_key("ecdsa256"))
    chain = LocalPubkey((left.cert, mid.cert), left.key, False)
    a, b, sa = run(chain, credentials(root, RIGHT_DN, "ecdsa256"), [root])
    assert sa.state is IkeState.ESTABLISHED
    (right_sa,) = b.manager.sas.values()
    assert ike_sa_status(right_sa, 0.0)["peer_certificate"]["subject"] == LEFT_DN
