"""Pseudorandom functions by IANA ID and prf+ (RFC 7296 §2.13, RFC 4868 §2.1.2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, hmac

from ..wire.enums import PrfId
from .errors import CryptoError, UnsupportedTransform, transform_name

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    PrfId.HMAC_SHA1: hashes.SHA1,
    PrfId.HMAC_SHA2_256: hashes.SHA256,
    PrfId.HMAC_SHA2_384: hashes.SHA384,
    PrfId.HMAC_SHA2_512: hashes.SHA512,
}

PRF_PLUS_MAX_ROUNDS = 255
"""prf+ appends a one-octet counter, so it yields at most 255 blocks (§2.13)."""


@dataclass(frozen=True, slots=True)
class Prf:
    """An HMAC-based PRF (RFC 2104 via ``cryptography``).

    ``key_size`` is the preferred key length, which for HMAC is the hash output size
    (RFC 7296 §2.13, RFC 4868 §2.1.2); it sizes SK_d, SK_pi and SK_pr (§2.14).
    """

    id: PrfId
    key_size: int
    output_size: int
    algorithm: type[hashes.HashAlgorithm] = field(repr=False, compare=False)

    def __call__(self, key: bytes, data: bytes) -> bytes:
        """prf(key, data): HMAC of ``data`` under ``key`` (any key length)."""
        mac = hmac.HMAC(key, self.algorithm())
        mac.update(data)
        return mac.finalize()


def prf_for(prf_id: PrfId | int) -> Prf:
    """The PRF for transform type 2 ``prf_id``; UnsupportedTransform otherwise."""
    algorithm = _HASHES.get(prf_id)
    if algorithm is None:
        raise UnsupportedTransform(f"unsupported PRF {transform_name(PrfId, prf_id)}")
    size = algorithm.digest_size
    return Prf(PrfId(prf_id), size, size, algorithm)


def prf_plus(prf: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (RFC 7296 §2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).

    Returns the first ``length`` octets of T1 | T2 | ...; CryptoError when that needs
    more than 255 iterations.
    """
    if length < 0:
        raise CryptoError(f"prf+ length must not be negative, got {length}")
    rounds = -(-length // prf.output_size)
    if rounds > PRF_PLUS_MAX_ROUNDS:
        raise CryptoError(
            f"prf+ cannot produce {length} octets with {prf.id.name} "
            f"(at most {PRF_PLUS_MAX_ROUNDS * prf.output_size})"
        )
    out = bytearray()
    block = b""
    for counter in range(1, rounds + 1):
        block = prf(key, block + seed + bytes((counter,)))
        out += block
    return bytes(out[:length])
