"""IKEv1 SIG payloads over HASH_I/HASH_R (RFC 2409 §5.1, RFC 4754 §3 and §7).

The signed value is the HASH itself, never hashed again, as strongSwan does:

* RSA_SIG (and the XAUTH RSA methods): PKCS#1 v1.5 type 1 padding over the raw HASH,
  no DigestInfo (strongSwan's SIGN_RSA_EMSA_PKCS1_NULL). pyca signs and verifies that
  with ``utils.NoDigestInfo`` (cryptography >= 47).
* ECDSA_256/384/521: ECDSA over the HASH taken as the digest (SIGN_ECDSA_WITH_NULL),
  encoded as r | s, each the curve's size (32, 48, 66 octets; RFC 4754 §7). With
  strongSwan the HASH comes from ``ikev1.phase1_auth_prf`` and so matches the curve.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from ..wire.isakmp_enums import AuthMethodV1
from .algid import SignatureError
from .errors import UnsupportedTransform, transform_name
from .signature import check_public_key

RSA_METHODS = frozenset(
    {AuthMethodV1.RSA_SIG, AuthMethodV1.XAUTH_INIT_RSA, AuthMethodV1.XAUTH_RESP_RSA}
)
ECDSA_CURVES = {  # RFC 4754 §4: method -> (curve name, octets per coordinate)
    AuthMethodV1.ECDSA_256: ("secp256r1", 32),
    AuthMethodV1.ECDSA_384: ("secp384r1", 48),
    AuthMethodV1.ECDSA_521: ("secp521r1", 66),
}
_DIGESTS: dict[int, type[hashes.HashAlgorithm]] = {
    20: hashes.SHA1,
    32: hashes.SHA256,
    48: hashes.SHA384,
    64: hashes.SHA512,
}
"""What a HASH of each size is to ECDSA, which signs a digest of known type."""


def _ecdsa(method: AuthMethodV1 | int, key_curve: str, hash_value: bytes) -> tuple[int, ec.ECDSA]:
    curve, size = ECDSA_CURVES[method]
    if key_curve != curve:
        raise SignatureError(f"{AuthMethodV1(method).name} needs a {curve} key, not {key_curve}")
    digest = _DIGESTS.get(len(hash_value))
    if digest is None:
        raise SignatureError(f"cannot sign a {len(hash_value)}-octet HASH with ECDSA")
    return size, ec.ECDSA(utils.Prehashed(digest()))


def _unsupported(method: AuthMethodV1 | int) -> UnsupportedTransform:
    return UnsupportedTransform(
        f"IKEv1 signature method {transform_name(AuthMethodV1, method)} is not supported"
    )


def v1_sign(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    method: AuthMethodV1 | int,
    hash_value: bytes,
) -> bytes:
    """SIG payload data over HASH_I or HASH_R for ``method``; SignatureError when the
    key does not fit the method or the HASH is too long for the key."""
    if not hash_value:
        raise SignatureError("nothing to sign: empty HASH")
    if method in RSA_METHODS:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SignatureError(f"{AuthMethodV1(method).name} needs an RSA key")
        if len(hash_value) > key.key_size // 8 - 11:  # PKCS#1 v1.5: 8 octets of PS at least
            raise SignatureError(f"{len(hash_value)}-octet HASH too long for the RSA key")
        return key.sign(hash_value, padding.PKCS1v15(), utils.NoDigestInfo())
    if method in ECDSA_CURVES:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SignatureError(f"{AuthMethodV1(method).name} needs an ECDSA key")
        size, algorithm = _ecdsa(method, key.curve.name, hash_value)
        r, s = utils.decode_dss_signature(key.sign(hash_value, algorithm))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise _unsupported(method)


def v1_verify(
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    method: AuthMethodV1 | int,
    signature: bytes,
    hash_value: bytes,
) -> None:
    """Check SIG payload data against the HASH we computed for the peer; raises
    SignatureError (wrong size, wrong key type or curve, weak key, mismatch)."""
    if not hash_value:
        raise SignatureError("nothing to verify: empty HASH")
    if method in RSA_METHODS:
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError(f"{AuthMethodV1(method).name} needs an RSA key")
        check_public_key(key)
        if len(signature) != (key.key_size + 7) // 8:
            raise SignatureError(f"RSA signature of {len(signature)} octets for the key")
        _run(method, key.verify, signature, hash_value, padding.PKCS1v15(), utils.NoDigestInfo())
        return
    elif method in ECDSA_CURVES:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureError(f"{AuthMethodV1(method).name} needs an ECDSA key")
        size, algorithm = _ecdsa(method, key.curve.name, hash_value)
        if len(signature) != 2 * size:
            raise SignatureError(
                f"{AuthMethodV1(method).name} signature of {len(signature)} octets"
            )
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        )
        _run(method, key.verify, der, hash_value, algorithm)
        return
    raise _unsupported(method)


def _run(method: AuthMethodV1 | int, verify: Callable[..., None], *args: object) -> None:
    try:
        verify(*args)
    except InvalidSignature:
        raise SignatureError(f"{AuthMethodV1(method).name} signature does not verify") from None
    except ValueError as exc:
        raise SignatureError(f"{AuthMethodV1(method).name} signature is malformed: {exc}") from None
