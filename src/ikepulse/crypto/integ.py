"""Integrity algorithms by IANA ID: truncated HMAC (RFC 2404, RFC 4868 §2.1-2.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from hmac import compare_digest

from cryptography.hazmat.primitives import hashes, hmac

from ..wire.enums import IntegId
from .errors import UnsupportedTransform, transform_name

# id -> (hash, ICV octets). Key length equals the hash output size (RFC 4868 §2.1.1).
_SUITES: dict[int, tuple[type[hashes.HashAlgorithm], int]] = {
    IntegId.HMAC_SHA1_96: (hashes.SHA1, 12),
    IntegId.HMAC_SHA2_256_128: (hashes.SHA256, 16),
    IntegId.HMAC_SHA2_384_192: (hashes.SHA384, 24),
    IntegId.HMAC_SHA2_512_256: (hashes.SHA512, 32),
}


@dataclass(frozen=True, slots=True)
class Integ:
    """An HMAC whose output is truncated to ``icv_size`` octets (RFC 4868 §2.3)."""

    id: IntegId
    key_size: int
    icv_size: int
    algorithm: type[hashes.HashAlgorithm] = field(repr=False, compare=False)

    def sign(self, key: bytes, data: bytes) -> bytes:
        """The truncated ICV of ``data`` under ``key``."""
        mac = hmac.HMAC(key, self.algorithm())
        mac.update(data)
        return mac.finalize()[: self.icv_size]

    def verify(self, key: bytes, data: bytes, icv: bytes) -> bool:
        """True when ``icv`` is the ICV of ``data``; compares in constant time."""
        return compare_digest(self.sign(key, data), icv)


def integ_for(integ_id: IntegId | int) -> Integ:
    """The integrity transform for type 3 ``integ_id``; UnsupportedTransform otherwise."""
    suite = _SUITES.get(integ_id)
    if suite is None:
        raise UnsupportedTransform(
            f"unsupported integrity algorithm {transform_name(IntegId, integ_id)}"
        )
    algorithm, icv_size = suite
    return Integ(IntegId(integ_id), algorithm.digest_size, icv_size, algorithm)
