"""Certificate path validation for IKE peers and the identities a certificate proves
(RFC 4945, RFC 5280 §6). Each negative runs on both validation paths: RSA chains through
pyca's verifier, Ed25519 chains on pyca primitives."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from ikepulse.core.connection import Identity, identity_match
from ikepulse.crypto.cert_ids import in_certificate
from ikepulse.crypto.certs import CertificateError, Revocation, Trust, spki_sha1, validate
from ikepulse.testing import pki
from ikepulse.wire.enums import IdType

NOW = pki.NOW
DAY = dt.timedelta(days=1)
KINDS = ["rsa2048", "ed25519"]  # pyca verifier path, primitives path


def trust(*cas, crls=(), revocation=Revocation.RELAXED) -> Trust:
    return Trust(tuple(c.cert for c in cas), tuple(crls), revocation)


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def root(kind):
    return pki.ca("C=CH, O=test, CN=Root CA", kind)


@pytest.fixture(scope="module")
def leaf(root, kind):
    return root.issue("C=CH, O=test, CN=gw.example", pki.new_key(kind), san=["gw.example"])


def test_leaf_chains_to_its_root(root, leaf):
    chain = validate(leaf.cert, [], trust(root), NOW)
    assert chain == [leaf.cert, root.cert]


def test_three_level_chain(root, kind):
    mid = root.issue("C=CH, O=test, CN=Intermediate", pki.new_key(kind), ca=True)
    ee = mid.issue("C=CH, O=test, CN=deep.example", pki.new_key(kind))
    assert validate(ee.cert, [mid.cert], trust(root), NOW) == [ee.cert, mid.cert, root.cert]
    with pytest.raises(CertificateError, match="issuer is not a trusted CA"):
        validate(ee.cert, [], trust(root), NOW)  # the intermediate is missing


def test_dn_only_certificate_without_san_accepted(root, kind):
    ee = root.issue("C=CH, O=test, CN=dn only", pki.new_key(kind))
    validate(ee.cert, [], trust(root), NOW)


def test_untrusted_ca_refused(leaf, kind):
    other = pki.ca("C=CH, O=other, CN=Other CA", kind)
    with pytest.raises(CertificateError, match="not a trusted CA"):
        validate(leaf.cert, [], trust(other), NOW)


def test_ca_with_the_same_name_but_another_key_refused(leaf, kind):
    """An impostor CA with the right DN: the signature does not verify."""
    impostor = pki.ca("C=CH, O=test, CN=Root CA", kind)
    with pytest.raises(CertificateError, match="does not verify|issuer|signature"):
        validate(leaf.cert, [], trust(impostor), NOW)


def test_expired_refused(root, kind):
    old = root.issue(
        "C=CH, O=test, CN=old", pki.new_key(kind), not_before=NOW - 60 * DAY, not_after=NOW - DAY
    )
    with pytest.raises(CertificateError, match="expired|not valid|validity"):
        validate(old.cert, [], trust(root), NOW)


def test_not_yet_valid_refused(root, kind):
    early = root.issue("C=CH, O=test, CN=early", pki.new_key(kind), not_before=NOW + DAY)
    with pytest.raises(CertificateError, match="not valid before|validity"):
        validate(early.cert, [], trust(root), NOW)


def test_revoked_by_crl_refused(root, leaf):
    crl = pki.crl(root, revoked=(leaf.cert.serial_number,))
    with pytest.raises(CertificateError, match="is revoked"):
        validate(leaf.cert, [], trust(root, crls=[crl]), NOW)
    validate(leaf.cert, [], trust(root, crls=[pki.crl(root)]), NOW)  # another serial: fine


def test_crl_from_another_ca_is_ignored(root, leaf, kind):
    other = pki.ca("C=CH, O=test, CN=Root CA", kind)  # same name, other key: forged CRL
    crl = pki.crl(other, revoked=(leaf.cert.serial_number,))
    validate(leaf.cert, [], trust(root, crls=[crl]), NOW)
    with pytest.raises(CertificateError, match="strict"):
        validate(leaf.cert, [], trust(root, crls=[crl], revocation=Revocation.STRICT), NOW)


def test_strict_revocation_needs_a_current_crl(root, leaf):
    with pytest.raises(CertificateError, match="no current CRL"):
        validate(leaf.cert, [], trust(root, revocation=Revocation.STRICT), NOW)
    stale = pki.crl(root, next_update=NOW - 0.5 * DAY)
    with pytest.raises(CertificateError, match="no current CRL"):
        validate(leaf.cert, [], trust(root, crls=[stale], revocation=Revocation.STRICT), NOW)
    validate(leaf.cert, [], trust(root, crls=[pki.crl(root)], revocation=Revocation.STRICT), NOW)


def test_ifuri_refuses_only_certificates_that_name_a_crl_uri(root, leaf, kind):
    ifuri = trust(root, revocation=Revocation.IFURI)
    validate(leaf.cert, [], ifuri, NOW)
    point = x509.DistributionPoint([x509.UniformResourceIdentifier("http://crl.example/ca.crl")],
                                   None, None, None)  # fmt: skip
    key = pki.new_key(kind)
    cert = pki.certificate("C=CH, O=test, CN=uri", key, root)
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer, subject_name=cert.subject, public_key=key.public_key(),
        serial_number=cert.serial_number, not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        extensions=[*cert.extensions],
    ).add_extension(x509.CRLDistributionPoints([point]), critical=False)  # fmt: skip
    with_uri = builder.sign(root.key, pki.signing_hash(root.key))
    with pytest.raises(CertificateError, match="ifuri"):
        validate(with_uri, [], ifuri, NOW)


def test_bad_signature_refused(root, leaf):
    der = bytearray(leaf.cert.public_bytes(Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(CertificateError, match="does not verify|signature"):
        validate(tampered, [], trust(root), NOW)


def test_path_length_constraint_enforced(root, kind):
    mid = root.issue("C=CH, O=test, CN=Mid0", pki.new_key(kind), ca=True, path_length=0)
    sub = mid.issue("C=CH, O=test, CN=Sub", pki.new_key(kind), ca=True)
    ee = sub.issue("C=CH, O=test, CN=too.deep", pki.new_key(kind))
    with pytest.raises(CertificateError, match="path"):
        validate(ee.cert, [sub.cert, mid.cert], trust(root), NOW)


def test_end_entity_cannot_issue(root, leaf, kind):
    ee = leaf.issue("C=CH, O=test, CN=child of a leaf", pki.new_key(kind))
    with pytest.raises(CertificateError, match="not a CA|CA"):
        validate(ee.cert, [leaf.cert], trust(root), NOW)


@pytest.mark.parametrize(
    "eku, ok",
    [
        ((ExtendedKeyUsageOID.SERVER_AUTH,), True),
        ((x509.ObjectIdentifier("1.3.6.1.5.5.8.2.2"),), True),  # iKEIntermediate
        ((ExtendedKeyUsageOID.CODE_SIGNING,), False),
    ],
)
def test_extended_key_usage(root, kind, eku, ok):
    ee = root.issue("C=CH, O=test, CN=eku", pki.new_key(kind), eku=eku)
    if ok:
        validate(ee.cert, [], trust(root), NOW)
    else:
        with pytest.raises(CertificateError, match="not for IKE|EKU|key usage"):
            validate(ee.cert, [], trust(root), NOW)


def test_key_usage_without_digital_signature_refused(root, kind):
    ee = root.issue("C=CH, O=test, CN=enc", pki.new_key("rsa2048"), key_usage="encipherment")
    with pytest.raises(CertificateError, match="key usage"):
        validate(ee.cert, [], trust(root), NOW)


def test_certreq_names_a_ca_by_the_sha1_of_its_public_key(root):
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = root.cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki_sha1(root.cert) == hashlib.sha1(spki).digest()


# --- identities -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def named():
    root = pki.ca("C=CH, O=test, CN=Root CA")
    return root.issue(
        "C=CH, O=test, CN=gw.example",
        pki.new_key("ecdsa256"),
        san=["gw.example", "admin@example.org", "198.51.100.1", "2001:db8::1"],
    ).cert


@pytest.mark.parametrize(
    "text, proven",
    [
        ("C=CH, O=test, CN=gw.example", True),
        ("c=ch, o=TEST, cn=GW.example", True),  # case does not matter in DNs
        ("C=CH, O=test, CN=other", False),
        ("CN=gw.example, O=test, C=CH", False),  # RDN order does
        ("gw.example", True),
        ("GW.Example", True),
        ("other.example", False),
        ("admin@example.org", True),
        ("root@example.org", False),
        ("198.51.100.1", True),
        ("198.51.100.2", False),
        ("2001:db8::1", True),
        ("C=CH, O=test, CN=*", False),  # a claim is never a pattern
    ],
)
def test_identity_in_certificate(named, text, proven):
    identity = Identity.parse(text)
    assert in_certificate(identity.id_type, identity.data, named) is proven


def test_dn_is_encoded_in_the_order_written_as_strongswan_does():
    identity = Identity.parse("C=CH, O=strongSwan, CN=moon.strongswan.org")
    assert identity.id_type == IdType.ID_DER_ASN1_DN
    assert identity.data.startswith(bytes.fromhex("3040310b3009060355040613024348"))  # C first
    assert str(identity) == "C=CH, O=strongSwan, CN=moon.strongswan.org"


@pytest.mark.parametrize(
    "pattern, claimed, matches",
    [
        ("C=CH, O=test, CN=*", "C=CH, O=test, CN=carol", True),
        ("C=CH, O=test, CN=*", "C=CH, O=other, CN=carol", False),
        ("C=CH, O=*, CN=*", "C=CH, O=x, CN=y", True),
        ("C=CH, O=test, CN=*", "C=CH, O=test", False),
        ("C=CH, O=test, CN=carol", "C=CH, O=test, CN=Carol", True),
    ],
)
def test_dn_patterns(pattern, claimed, matches):
    assert bool(identity_match(Identity.parse(pattern), Identity.parse(claimed))) is matches
    assert Identity.parse(pattern).is_pattern is ("*" in pattern)


def test_malformed_dn_identity_matches_nothing(named):
    bogus = Identity(IdType.ID_DER_ASN1_DN, b"\x30\x05\x31\x03\x30\x01")
    assert not in_certificate(bogus.id_type, bogus.data, named)
    assert not identity_match(Identity.parse("C=CH, CN=*"), bogus)
    assert str(bogus) == bogus.data.hex()
