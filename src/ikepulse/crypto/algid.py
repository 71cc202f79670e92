"""ASN.1 AlgorithmIdentifier blobs of RFC 7427 digital signatures (§3, Appendix A).

Only the few DER shapes RFC 7427 uses are read: a SEQUENCE of an OBJECT IDENTIFIER and
optional parameters (NULL, or RSASSA-PSS-params of RFC 8017 A.2.3). Anything else, and any
PSS salt length a key cannot hold, is refused with a ``SignatureError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import der
from .errors import CryptoError


class SignatureError(CryptoError):
    """A signature, signature algorithm or public key that is not acceptable."""


RSA_PKCS1, RSA_PSS, ECDSA, ED25519, ED448 = "rsa", "rsa/pss", "ecdsa", "ed25519", "ed448"

HASH_LEN = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

_HASH_OIDS = {
    "sha1": bytes.fromhex("2b0e03021a"),
    "sha256": bytes.fromhex("608648016503040201"),
    "sha384": bytes.fromhex("608648016503040202"),
    "sha512": bytes.fromhex("608648016503040203"),
}
_PKCS1_OIDS = {
    "sha1": bytes.fromhex("2a864886f70d010105"),
    "sha256": bytes.fromhex("2a864886f70d01010b"),
    "sha384": bytes.fromhex("2a864886f70d01010c"),
    "sha512": bytes.fromhex("2a864886f70d01010d"),
}
_ECDSA_OIDS = {
    "sha256": bytes.fromhex("2a8648ce3d040302"),
    "sha384": bytes.fromhex("2a8648ce3d040303"),
    "sha512": bytes.fromhex("2a8648ce3d040304"),
}
_PSS_OID = bytes.fromhex("2a864886f70d01010a")
_MGF1_OID = bytes.fromhex("2a864886f70d010108")
_EDDSA_OIDS = {ED25519: bytes.fromhex("2b6570"), ED448: bytes.fromhex("2b6571")}
_NULL = b"\x05\x00"

MAX_PSS_SALT = 512
"""No key this side of 4096 bits can hold a longer salt: a larger one is refused outright."""


@dataclass(frozen=True, slots=True)
class Scheme:
    """One signature scheme: ``kind`` (rsa, rsa/pss, ecdsa, ed25519, ed448), its hash
    (None for EdDSA) and, for RSASSA-PSS, the salt length."""

    kind: str
    hash: str | None = None
    salt: int | None = None

    def __str__(self) -> str:
        if self.hash is None:
            return self.kind
        salt = f" salt {self.salt}" if self.kind == RSA_PSS else ""
        return f"{self.kind}-{self.hash}{salt}"


def _algorithm(content: bytes) -> tuple[bytes, bytes | None]:
    """(OID content, parameters element or None) of an AlgorithmIdentifier's content."""
    items = der.elements(content)
    if not items or items[0][0] != 0x06 or len(items) > 2:
        raise SignatureError("AlgorithmIdentifier is not SEQUENCE { OID, parameters }")
    params = None
    if len(items) == 2:
        params = der.tlv(*items[1])
    return items[0][1], params


def _hash_of(content: bytes) -> str:
    oid, params = _algorithm(content)
    for name, value in _HASH_OIDS.items():
        if oid == value and params in (None, _NULL):
            return name
    raise SignatureError(f"unsupported hash algorithm {oid.hex()}")


def _integer(content: bytes, what: str) -> int:
    items = der.elements(content)
    if len(items) != 1 or items[0][0] != 0x02 or not 1 <= len(items[0][1]) <= 4:
        raise SignatureError(f"PSS {what} is not a small INTEGER")
    value = int.from_bytes(items[0][1], "big", signed=True)
    if value < 0:
        raise SignatureError(f"PSS {what} {value} is negative")
    return value


def _pss(params: bytes | None) -> Scheme:
    """RSASSA-PSS-params (RFC 8017 A.2.3); the MGF1 hash must be the message hash."""
    if params is None:
        raise SignatureError("RSASSA-PSS without parameters")
    tag, content, end = der.read(params)
    if tag != 0x30 or end != len(params):
        raise SignatureError("RSASSA-PSS parameters are not a SEQUENCE")
    fields = {t: v for t, v in der.elements(content)}
    if set(fields) - {0xA0, 0xA1, 0xA2, 0xA3}:
        raise SignatureError("unknown field in RSASSA-PSS parameters")
    digest = "sha1"
    if 0xA0 in fields:
        tag, inner, _ = der.read(fields[0xA0])
        digest = _hash_of(inner)
    mgf_hash = "sha1"
    if 0xA1 in fields:
        tag, inner, _ = der.read(fields[0xA1])
        oid, mgf_params = _algorithm(inner)
        if oid != _MGF1_OID or mgf_params is None:
            raise SignatureError("PSS mask generation function is not MGF1")
        mgf_hash = _hash_of(der.read(mgf_params)[1])
    if mgf_hash != digest:
        raise SignatureError(f"PSS with {digest} but MGF1-{mgf_hash}")
    salt = _integer(fields[0xA2], "salt length") if 0xA2 in fields else 20
    if 0xA3 in fields and _integer(fields[0xA3], "trailer field") != 1:
        raise SignatureError("PSS trailer field is not 1")
    if salt > MAX_PSS_SALT:
        raise SignatureError(f"PSS salt length {salt} is absurd")
    return Scheme(RSA_PSS, digest, salt)


def parse_algorithm_identifier(blob: bytes) -> Scheme:
    """The scheme a peer names in its method 14 AUTH payload (RFC 7427 §3)."""
    try:
        return _parse(blob)
    except der.DerError as exc:
        raise SignatureError(f"malformed AlgorithmIdentifier: {exc}") from None


def _parse(blob: bytes) -> Scheme:
    tag, content, end = der.read(blob)
    if tag != 0x30 or end != len(blob):
        raise SignatureError("AlgorithmIdentifier is not one DER SEQUENCE")
    oid, params = _algorithm(content)
    if oid == _PSS_OID:
        return _pss(params)
    for table, kind, allowed in (
        (_PKCS1_OIDS, RSA_PKCS1, (_NULL, None)),
        (_ECDSA_OIDS, ECDSA, (None,)),
    ):
        for name, value in table.items():
            if oid == value and params in allowed:
                return Scheme(kind, name)
    for kind, value in _EDDSA_OIDS.items():
        if oid == value and params is None:
            return Scheme(kind)
    raise SignatureError(f"unsupported signature algorithm {oid.hex()}")


def algorithm_identifier(scheme: Scheme) -> bytes:
    """The DER AlgorithmIdentifier naming ``scheme`` (RFC 7427 Appendix A)."""
    if scheme.kind == RSA_PKCS1:
        return der.tlv(0x30, der.tlv(0x06, _PKCS1_OIDS[scheme.hash]) + _NULL)
    if scheme.kind == ECDSA:
        return der.tlv(0x30, der.tlv(0x06, _ECDSA_OIDS[scheme.hash]))
    if scheme.kind in _EDDSA_OIDS:
        return der.tlv(0x30, der.tlv(0x06, _EDDSA_OIDS[scheme.kind]))
    digest = der.tlv(0x30, der.tlv(0x06, _HASH_OIDS[scheme.hash]) + _NULL)
    mgf = der.tlv(0x30, der.tlv(0x06, _MGF1_OID) + digest)
    salt = scheme.salt.to_bytes(max(1, (scheme.salt.bit_length() + 8) // 8), "big")
    params = der.tlv(0xA0, digest) + der.tlv(0xA1, mgf) + der.tlv(0xA2, der.tlv(0x02, salt))
    return der.tlv(0x30, der.tlv(0x06, _PSS_OID) + der.tlv(0x30, params))
