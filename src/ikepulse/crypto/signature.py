"""Private keys, certificates and AUTH signatures (RFC 7296 §2.15, §3.8; RFC 7427;
RFC 4754 for the classic ECDSA methods; RFC 8420 for Ed25519).

Bytes in, bytes out: reading files is the caller's business. All the cryptography is pyca's.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, utils

from ..wire.enums import AuthMethod, HashAlgorithm
from .algid import (
    ECDSA,
    ED448,
    ED25519,
    HASH_LEN,
    RSA_PKCS1,
    RSA_PSS,
    Scheme,
    SignatureError,
    algorithm_identifier,
    parse_algorithm_identifier,
)

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

MIN_RSA_BITS = 2048
_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
           "sha512": hashes.SHA512}  # fmt: skip
_HASH_IDS = {
    "sha1": HashAlgorithm.SHA1,
    "sha256": HashAlgorithm.SHA2_256,
    "sha384": HashAlgorithm.SHA2_384,
    "sha512": HashAlgorithm.SHA2_512,
}
OUR_HASHES = (
    HashAlgorithm.SHA2_256,
    HashAlgorithm.SHA2_384,
    HashAlgorithm.SHA2_512,
    HashAlgorithm.IDENTITY,
)
"""What we announce in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4, RFC 8420 §2)."""

_CLASSIC_ECDSA = {  # RFC 4754: curve -> (method, hash, octets per coordinate)
    "secp256r1": (AuthMethod.ECDSA_SHA256_P256, "sha256", 32),
    "secp384r1": (AuthMethod.ECDSA_SHA384_P384, "sha384", 48),
    "secp521r1": (AuthMethod.ECDSA_SHA512_P521, "sha512", 66),
}
_CURVE_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """A PEM or DER private key (PKCS#8 or the traditional RSA/EC forms)."""
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key)
    if data.lstrip().startswith(b"-----"):
        loaders = loaders[:1]
    last: Exception | None = None
    for loader in loaders:
        try:
            key = loader(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            last = exc
            continue
        if not isinstance(key, PrivateKey):
            raise SignatureError(f"{type(key).__name__} keys cannot sign IKE AUTH payloads")
        return key
    raise SignatureError(f"not a PEM or DER private key ({last})")


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file, or the one of a DER file."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, x509.InvalidVersion) as exc:
        raise SignatureError(f"not a PEM or DER certificate ({exc})") from None


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's key, refused cleanly when unusable (RSA e < 3, short moduli...)."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"unusable public key in certificate: {exc}") from None
    if not isinstance(key, PublicKey):
        raise SignatureError(f"{type(key).__name__} certificates cannot authenticate IKE")
    check_public_key(key)
    return key


def check_public_key(key: PublicKey) -> None:
    """RSA moduli of at least 2048 bits with an odd exponent of at least 3; named curves."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        if key.key_size < MIN_RSA_BITS:
            raise SignatureError(f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS})")
        if numbers.e < 3 or numbers.e % 2 == 0:
            raise SignatureError(f"RSA public exponent {numbers.e} is not acceptable")
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _CURVE_HASH:
        raise SignatureError(f"ECDSA curve {key.curve.name} is not supported")


def keys_match(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of the certificate's public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    return ours == cert.public_key().public_bytes(serialization.Encoding.DER, spki)


def key_kind(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSA_PKCS1
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECDSA
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return ED25519
    return ED448


def choose(
    key: PrivateKey, peer_hashes: frozenset[HashAlgorithm] | None, pss: bool = False
) -> tuple[AuthMethod, Scheme]:
    """Our AUTH method and scheme: RFC 7427 digital signature with a hash the peer announced
    in SIGNATURE_HASH_ALGORITHMS, else the classic method for the key (RSA with PKCS#1 v1.5,
    ECDSA per RFC 4754). EdDSA has no classic method: it goes as RFC 8420 regardless."""
    kind = key_kind(key)
    if kind in (ED25519, ED448):
        return AuthMethod.DIGITAL_SIGNATURE, Scheme(kind)
    if peer_hashes:
        preferred = _CURVE_HASH[key.curve.name] if kind == ECDSA else "sha256"
        order = [preferred] + [h for h in ("sha256", "sha384", "sha512") if h != preferred]
        for name in order:
            if _HASH_IDS[name] in peer_hashes:
                if kind == RSA_PKCS1 and pss:
                    return AuthMethod.DIGITAL_SIGNATURE, Scheme(RSA_PSS, name, HASH_LEN[name])
                return AuthMethod.DIGITAL_SIGNATURE, Scheme(kind, name)
    if kind == ECDSA:
        method, digest, _ = _CLASSIC_ECDSA[key.curve.name]
        return method, Scheme(ECDSA, digest)
    return AuthMethod.RSA_SIG, Scheme(RSA_PKCS1, "sha1")


def _raw_sign(key: PrivateKey, scheme: Scheme, octets: bytes) -> bytes:
    if scheme.kind in (ED25519, ED448):
        return key.sign(octets)
    digest = _HASHES[scheme.hash]()
    if scheme.kind == RSA_PKCS1:
        return key.sign(octets, padding.PKCS1v15(), digest)
    if scheme.kind == RSA_PSS:
        return key.sign(octets, padding.PSS(padding.MGF1(digest), scheme.salt), digest)
    return key.sign(octets, ec.ECDSA(digest))


def sign(key: PrivateKey, method: AuthMethod, scheme: Scheme, octets: bytes) -> bytes:
    """AUTH payload data over the signed octets (§2.15) for ``method``."""
    signature = _raw_sign(key, scheme, octets)
    if method == AuthMethod.DIGITAL_SIGNATURE:
        blob = algorithm_identifier(scheme)
        return bytes([len(blob)]) + blob + signature
    if scheme.kind == ECDSA:  # RFC 4754: r | s, each of fixed size
        r, s = utils.decode_dss_signature(signature)
        size = _CLASSIC_ECDSA[key.curve.name][2]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return signature


def _method_scheme(key: PublicKey, method: AuthMethod, data: bytes) -> tuple[Scheme, bytes]:
    """The scheme an AUTH payload of ``method`` uses and its bare signature."""
    kind = key_kind(key)
    if method == AuthMethod.DIGITAL_SIGNATURE:
        if not data or len(data) < 1 + data[0]:
            raise SignatureError("AUTH payload too short for its AlgorithmIdentifier")
        scheme = parse_algorithm_identifier(data[1 : 1 + data[0]])
        signature = data[1 + data[0] :]
        if scheme.kind != kind and not (kind == RSA_PKCS1 and scheme.kind == RSA_PSS):
            raise SignatureError(f"{scheme} signature from a {kind} key")
        if scheme.hash == "sha1":
            raise SignatureError("SHA-1 signatures are not accepted (RFC 8247 §3.2)")
        return scheme, signature
    if method == AuthMethod.RSA_SIG and kind == RSA_PKCS1:
        return Scheme(RSA_PKCS1, "sha1"), data
    if kind == ECDSA and key.curve.name in _CLASSIC_ECDSA:
        wanted, digest, size = _CLASSIC_ECDSA[key.curve.name]
        if method == wanted:
            if len(data) != 2 * size:
                raise SignatureError(f"{method.name} signature of {len(data)} octets")
            r, s = int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big")
            return Scheme(ECDSA, digest), utils.encode_dss_signature(r, s)
    raise SignatureError(f"auth method {method.name} does not fit a {kind} key")


def verify(key: PublicKey, method: AuthMethod, data: bytes, octets: bytes) -> Scheme:
    """Check the AUTH payload data of ``method`` over the signed octets with the peer's
    key; returns the scheme used, raises SignatureError."""
    check_public_key(key)
    scheme, signature = _method_scheme(key, method, data)
    try:
        if scheme.kind in (ED25519, ED448):
            key.verify(signature, octets)
            return scheme
        digest = _HASHES[scheme.hash]()
        if scheme.kind == RSA_PKCS1:
            key.verify(signature, octets, padding.PKCS1v15(), digest)
        elif scheme.kind == RSA_PSS:
            limit = (key.key_size + 7) // 8 - digest.digest_size - 2
            if scheme.salt > limit:
                raise SignatureError(f"PSS salt length {scheme.salt} exceeds {limit} for the key")
            key.verify(signature, octets, padding.PSS(padding.MGF1(digest), scheme.salt), digest)
        else:
            key.verify(signature, octets, ec.ECDSA(digest))
    except InvalidSignature:
        raise SignatureError(f"{scheme} signature does not verify") from None
    except ValueError as exc:  # e.g. malformed DER ECDSA signature
        raise SignatureError(f"{scheme} signature is malformed: {exc}") from None
    return scheme
