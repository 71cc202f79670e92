"""AUTH signatures: RFC 7427 method 14 and the classic RSA (1) and ECDSA (9-11) methods,
over the signed octets of RFC 7296 §2.15, and the malformed or forged ones refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ikepulse.crypto.algid import (
    RSA_PSS,
    Scheme,
    SignatureError,
    algorithm_identifier,
    parse_algorithm_identifier,
)
from ikepulse.crypto.auth import signed_octets
from ikepulse.crypto.prf import prf_for
from ikepulse.crypto.signature import choose, load_private_key, public_key_of, sign, verify
from ikepulse.testing import pki
from ikepulse.wire.enums import AuthMethod, HashAlgorithm, PrfId

ALL_HASHES = frozenset(HashAlgorithm(h) for h in (2, 3, 4, 5))
OCTETS = b"IKE_SA_INIT request" + b"\x11" * 32 + b"\x22" * 32

# RFC 7427 Appendix A.4.3: RSASSA-PSS with SHA-256 (salt 32).
RFC7427_PSS_SHA256 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886"
    "f70d010108300d06096086480165030402010500a203020120"
)


@pytest.fixture(scope="module")
def keys():
    return {kind: pki.new_key(kind.removesuffix("-pss")) for kind in pki.KEY_TYPES}


@pytest.mark.parametrize("kind", pki.KEY_TYPES)
@pytest.mark.parametrize("announced", [True, False], ids=["rfc7427", "classic"])
def test_sign_and_verify_each_key_type(keys, kind, announced):
    key = keys[kind]
    method, scheme = choose(key, ALL_HASHES if announced else None, pss=kind.endswith("-pss"))
    data = sign(key, method, scheme, OCTETS)
    assert verify(key.public_key(), method, data, OCTETS) == scheme
    with pytest.raises(SignatureError, match="does not verify|malformed"):
        verify(key.public_key(), method, data, OCTETS + b"x")


@pytest.mark.parametrize(
    "kind, announced, method, scheme",
    [
        ("rsa2048", True, AuthMethod.DIGITAL_SIGNATURE, "rsa-sha256"),
        ("rsa2048-pss", True, AuthMethod.DIGITAL_SIGNATURE, "rsa/pss-sha256 salt 32"),
        ("rsa2048", False, AuthMethod.RSA_SIG, "rsa-sha1"),
        ("rsa2048-pss", False, AuthMethod.RSA_SIG, "rsa-sha1"),
        ("ecdsa256", False, AuthMethod.ECDSA_SHA256_P256, "ecdsa-sha256"),
        ("ecdsa384", False, AuthMethod.ECDSA_SHA384_P384, "ecdsa-sha384"),
        ("ecdsa521", False, AuthMethod.ECDSA_SHA512_P521, "ecdsa-sha512"),
        ("ecdsa384", True, AuthMethod.DIGITAL_SIGNATURE, "ecdsa-sha384"),
        ("ed25519", True, AuthMethod.DIGITAL_SIGNATURE, "ed25519"),
    ],
)
def test_method_follows_the_peers_announcement_and_the_key(keys, kind, announced, method, scheme):
    got = choose(keys[kind], ALL_HASHES if announced else None, pss=kind.endswith("-pss"))
    assert (got[0], str(got[1])) == (method, scheme)


def test_classic_ecdsa_is_r_and_s_of_fixed_size(keys):
    data = sign(keys["ecdsa521"], *choose(keys["ecdsa521"], None), OCTETS)
    assert len(data) == 132  # RFC 4754 §7: 66 octets each for P-521


def test_method_14_carries_the_algorithm_identifier(keys):
    data = sign(keys["rsa2048-pss"], *choose(keys["rsa2048-pss"], ALL_HASHES, pss=True), OCTETS)
    assert data[0] == len(RFC7427_PSS_SHA256)
    assert data[1 : 1 + data[0]] == RFC7427_PSS_SHA256


def test_signature_covers_the_signed_octets_of_section_2_15(keys):
    """InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, IDi')."""
    prf, sk_pi = prf_for(PrfId.HMAC_SHA2_256), b"\x33" * 32
    id_body = b"\x02\x00\x00\x00left.example"
    octets = signed_octets(b"IKE_SA_INIT bytes", b"\x44" * 32, prf, sk_pi, id_body)
    data = sign(keys["rsa2048"], AuthMethod.RSA_SIG, Scheme("rsa", "sha1"), octets)
    reference = b"IKE_SA_INIT bytes" + b"\x44" * 32 + hmac.new(sk_pi, id_body, "sha256").digest()
    keys["rsa2048"].public_key().verify(data, reference, padding.PKCS1v15(), hashes.SHA1())


def test_wrong_key_type_for_method_refused(keys):
    data = sign(keys["ecdsa256"], *choose(keys["ecdsa256"], None), OCTETS)
    with pytest.raises(SignatureError, match="does not fit"):
        verify(keys["rsa2048"].public_key(), AuthMethod.ECDSA_SHA256_P256, data, OCTETS)


def test_sha1_refused_in_method_14(keys):
    key = keys["rsa2048"]
    blob = algorithm_identifier(Scheme("rsa", "sha1"))
    sig = key.sign(OCTETS, padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(SignatureError, match="SHA-1"):
        verify(
            key.public_key(), AuthMethod.DIGITAL_SIGNATURE, bytes([len(blob)]) + blob + sig, OCTETS
        )


def _pss_blob(salt: bytes) -> bytes:
    """RFC 7427's PSS SHA-256 AlgorithmIdentifier with another salt INTEGER."""
    grow = len(salt) - 1
    head = RFC7427_PSS_SHA256[:-5]  # up to the [2] salt field
    head = b"\x30" + bytes([0x41 + grow]) + head[2:13] + b"\x30" + bytes([0x34 + grow]) + head[15:]
    return head + b"\xa2" + bytes([2 + len(salt)]) + b"\x02" + bytes([len(salt)]) + salt


def test_rfc7427_pss_blob_parses():
    assert parse_algorithm_identifier(RFC7427_PSS_SHA256) == Scheme(RSA_PSS, "sha256", 32)
    assert parse_algorithm_identifier(_pss_blob(b"\x40")) == Scheme(RSA_PSS, "sha256", 64)


@pytest.mark.parametrize("salt", [b"\x7f\xff\xff\xff", b"\x01\x00\x00\x00\x00", b"\xff"])
def test_pss_absurd_salt_length_refused(salt):
    with pytest.raises(SignatureError, match="salt|INTEGER|negative"):
        parse_algorithm_identifier(_pss_blob(salt))


def test_pss_salt_longer_than_the_key_allows_refused(keys):
    key = keys["rsa2048-pss"]
    blob = _pss_blob(b"\x01\xf0")  # 496 octets: more than a 2048-bit key can hold
    assert parse_algorithm_identifier(blob).salt == 496
    with pytest.raises(SignatureError, match="exceeds"):
        verify(
            key.public_key(),
            AuthMethod.DIGITAL_SIGNATURE,
            bytes([len(blob)]) + blob + bytes(256),
            OCTETS,
        )


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x30",
        b"\x30\x05\x06\x03\x2b\x65",
        b"\x31\x05\x06\x03\x2b\x65\x70",
        b"\x30\x81\x05" + bytes(5),
        bytes.fromhex("300b06092a864886f70d01010a"),  # PSS without parameters
    ],
)
def test_malformed_algorithm_identifiers_refused(blob):
    with pytest.raises(SignatureError):
        parse_algorithm_identifier(blob)


def _icbrt(n: int) -> int:
    """Integer cube root, rounded up (test arithmetic for the forgery)."""
    lo, hi = 0, 1 << ((n.bit_length() + 2) // 3 + 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if mid**3 < n:
            lo = mid + 1
        else:
            hi = mid
    return lo


def test_bleichenbacher06_forgery_with_exponent_3_refused():
    """A signature whose cube starts 00 01 FF 00 DigestInfo(SHA-1) hash and ends in garbage:
    sloppy PKCS#1 v1.5 parsers accept it (CVE-2006-4339; strongSwan CVE-2018-16151/2)."""
    key = rsa.generate_private_key(3, 2048).public_key()
    digest_info = bytes.fromhex("3021300906052b0e03021a05000414") + hashlib.sha1(OCTETS).digest()
    prefix = b"\x00\x01\xff\x00" + digest_info
    target = int.from_bytes(prefix + bytes(256 - len(prefix)), "big")
    forged = _icbrt(target)
    assert (forged**3).to_bytes(256, "big").startswith(prefix)  # the forgery is well made
    with pytest.raises(SignatureError, match="does not verify"):
        verify(key, AuthMethod.RSA_SIG, forged.to_bytes(256, "big"), OCTETS)


@pytest.mark.parametrize("exponent", [0, 1])
def test_rsa_exponent_0_or_1_in_a_certificate_refused_cleanly(exponent):
    """A certificate with e = 0 or 1 (the signature then verifies for any message)."""
    key = pki.new_key("rsa2048", public_exponent=3)
    cert = pki.certificate("C=CH, O=test, CN=bad", key)
    der = cert.public_bytes(Encoding.DER)
    n = key.public_key().public_numbers().n.to_bytes(256, "big")
    assert der.count(n + b"\x02\x01\x03") == 1
    bad = der.replace(n + b"\x02\x01\x03", n + b"\x02\x01" + bytes([exponent]))
    with pytest.raises(SignatureError, match="unusable public key"):
        public_key_of(x509.load_der_x509_certificate(bad))


def test_small_rsa_key_refused():
    key = rsa.generate_private_key(65537, 1024)
    data = key.sign(OCTETS, padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(SignatureError, match="1024 bits"):
        verify(key.public_key(), AuthMethod.RSA_SIG, data, OCTETS)


@pytest.mark.parametrize("form", ["pem", "der"])
@pytest.mark.parametrize("kind", ["rsa2048", "ecdsa384", "ed25519"])
def test_private_keys_load_from_pem_and_der(keys, form, kind):
    from cryptography.hazmat.primitives import serialization as s

    encoding = s.Encoding.PEM if form == "pem" else s.Encoding.DER
    data = keys[kind].private_bytes(encoding, s.PrivateFormat.PKCS8, s.NoEncryption())
    loaded = load_private_key(data)
    assert loaded.public_key().public_bytes(
        s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo
    ) == (keys[kind].public_key().public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo))


def test_garbage_private_key_refused():
    with pytest.raises(SignatureError, match="not a PEM or DER private key"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
