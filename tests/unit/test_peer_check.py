"""Whatever a peer puts in its CERT and AUTH payloads, checking it ends in a verdict: the
certificate, or AuthenticationFailed with a reason (never another exception)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikepulse.core.connection import Identity
from ikepulse.core.errors import AuthenticationFailed
from ikepulse.core.pubkey_auth import check_peer
from ikepulse.crypto.certs import Revocation, Trust
from ikepulse.crypto.signature import choose, sign
from ikepulse.testing import pki
from ikepulse.wire.enums import AuthMethod, CertEncoding, HashAlgorithm
from ikepulse.wire.payloads import AuthPayload, CertPayload, CertreqPayload

OCTETS = b"signed octets"
PEER = Identity.parse("C=CH, O=test, CN=peer")
HASHES = frozenset({HashAlgorithm.SHA2_256, HashAlgorithm.IDENTITY})


@pytest.fixture(scope="module", params=["rsa2048", "ed25519"])
def setup(request):
    root = pki.ca("C=CH, O=test, CN=Root", request.param)
    mid = root.issue("C=CH, O=test, CN=Mid", pki.new_key(request.param), ca=True)
    leaf = mid.issue("C=CH, O=test, CN=peer", pki.new_key(request.param), san=["peer.example"])
    method, scheme = choose(leaf.key, HASHES)
    auth = AuthPayload(method, sign(leaf.key, method, scheme, OCTETS))
    certs = [leaf.cert.public_bytes(Encoding.DER), mid.cert.public_bytes(Encoding.DER)]
    return Trust((root.cert,), (pki.crl(root),), Revocation.RELAXED), auth, certs


def payloads(certs: list[bytes]) -> list[CertPayload]:
    return [CertPayload(CertEncoding.X509_SIGNATURE, c) for c in certs]


def test_a_good_peer_passes(setup):
    trust, auth, certs = setup
    cert, _ = check_peer(trust, PEER, auth, payloads(certs), OCTETS, pki.NOW)
    assert cert.subject.rfc4514_string() == "CN=peer,O=test,C=CH"
    fqdn = Identity.parse("peer.example")
    assert check_peer(trust, fqdn, auth, payloads(certs), OCTETS, pki.NOW)[0] == cert


def test_certreq_payloads_are_not_certificates(setup):
    trust, auth, certs = setup
    only_req = [CertreqPayload(CertEncoding.X509_SIGNATURE, b"\x00" * 20)]
    with pytest.raises(AuthenticationFailed, match="no X.509 certificate"):
        check_peer(trust, PEER, auth, only_req, OCTETS, pki.NOW)


def test_psk_method_refused_where_a_signature_is_wanted(setup):
    trust, _, certs = setup
    with pytest.raises(AuthenticationFailed, match="SHARED_KEY_MIC"):
        check_peer(trust, PEER, AuthPayload(AuthMethod.SHARED_KEY_MIC, b"x" * 32),
                   payloads(certs), OCTETS, pki.NOW)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_certificates_and_auth_data_get_a_verdict(setup, data):
    trust, auth, certs = setup
    which = data.draw(st.sampled_from(["leaf", "mid", "auth"]))
    blob = bytearray(auth.data if which == "auth" else certs[which == "mid"])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    new_certs = list(certs)
    new_auth = auth
    if which == "auth":
        new_auth = AuthPayload(auth.method, bytes(blob))
    else:
        new_certs[which == "mid"] = bytes(blob)
    try:
        check_peer(trust, PEER, new_auth, payloads(new_certs), OCTETS, pki.NOW)
    except AuthenticationFailed as exc:
        assert exc.reason


def test_we_send_the_intermediates_the_peer_lacks():
    """CERTREQ names the CAs a peer has (§3.7): the chain we send stops below the first."""
    from ikepulse.core.connection import LocalPubkey
    from ikepulse.core.pubkey_auth import cert_payloads, certreq, requested
    from ikepulse.crypto.certs import spki_sha1

    root = pki.ca("C=CH, O=test, CN=Root")
    mid = root.issue("C=CH, O=test, CN=Mid", pki.new_key("ecdsa256"), ca=True)
    sub = mid.issue("C=CH, O=test, CN=Sub", pki.new_key("ecdsa256"), ca=True)
    leaf = sub.issue("C=CH, O=test, CN=gw", pki.new_key("ecdsa256"))
    ours = LocalPubkey((leaf.cert, sub.cert, mid.cert, root.cert), leaf.key, False)

    def sent(wanted):
        return [x509.load_der_x509_certificate(p.data) for p in cert_payloads(ours, wanted)]

    assert sent(None) == [leaf.cert, sub.cert, mid.cert]  # never the self-signed root
    assert sent(frozenset({spki_sha1(root.cert)})) == [leaf.cert, sub.cert, mid.cert]
    assert sent(frozenset({spki_sha1(mid.cert)})) == [leaf.cert, sub.cert]
    assert sent(frozenset({spki_sha1(sub.cert)})) == [leaf.cert]
    two = certreq(Trust((root.cert, mid.cert), (), Revocation.RELAXED))
    assert requested([two]) == {spki_sha1(root.cert), spki_sha1(mid.cert)}
    assert requested([]) is None
