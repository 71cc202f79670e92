"""Key exchange methods by IANA ID (transform type 4) and KE payload encodings.

MODP groups 14-16: RFC 3526 (generator 2); the public value is y left-padded to the
prime length (RFC 7296 §3.4). ECP groups 19-21: RFC 5903 §7; the KE data is x || y,
each coordinate padded to the field size, and the shared secret is the x coordinate.
Curve25519/Curve448: RFC 8031 §3, raw 32/56-octet u-coordinates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.utils import CryptographyDeprecationWarning

from ..wire.enums import DhId
from .errors import CryptoError, InvalidKeyExchange, UnsupportedTransform, transform_name

with warnings.catch_warnings():
    # cryptography 50 deprecates finite-field DH; RFC 8247 §2.4 still requires group 14.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from cryptography.hazmat.primitives.asymmetric import dh as _dh

    _DHParameterNumbers = _dh.DHParameterNumbers
    _DHPublicNumbers = _dh.DHPublicNumbers


class Rng(Protocol):
    """Where randomness comes from: ``random.Random(seed)`` or ``secrets.SystemRandom()``."""

    def randbytes(self, n: int) -> bytes: ...


# RFC 3526 §3, §4, §5 primes; each group's generator is 2.
_MODP_2048 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
_MODP_3072 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
_MODP_4096 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
    16,
)
MODP_PRIMES: dict[DhId, int] = {
    DhId.MODP_2048: _MODP_2048,
    DhId.MODP_3072: _MODP_3072,
    DhId.MODP_4096: _MODP_4096,
}
MODP_GENERATOR = 2

# Curve, field octets, group order n (SEC 2 / FIPS 186-4 D.1.2).
_ECP: dict[DhId, tuple[ec.EllipticCurve, int, int]] = {
    DhId.ECP_256: (
        ec.SECP256R1(),
        32,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    DhId.ECP_384: (
        ec.SECP384R1(),
        48,
        int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
            "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
            16,
        ),
    ),
    DhId.ECP_521: (
        ec.SECP521R1(),
        66,
        int(
            "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
            "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
            16,
        ),
    ),
}

_MONTGOMERY: dict[DhId, tuple[Any, int]] = {
    DhId.CURVE25519: (x25519.X25519PrivateKey, 32),
    DhId.CURVE448: (x448.X448PrivateKey, 56),
}
_MONTGOMERY_PUBLIC: dict[DhId, Any] = {
    DhId.CURVE25519: x25519.X25519PublicKey,
    DhId.CURVE448: x448.X448PublicKey,
}

SUPPORTED_GROUPS: tuple[DhId, ...] = (
    DhId.MODP_2048,
    DhId.MODP_3072,
    DhId.MODP_4096,
    DhId.ECP_256,
    DhId.ECP_384,
    DhId.ECP_521,
    DhId.CURVE25519,
    DhId.CURVE448,
)


def public_key_size(group: DhId | int) -> int:
    """Octets of Key Exchange Data in a KE payload for ``group`` (RFC 7296 §3.4)."""
    if group in MODP_PRIMES:
        return (MODP_PRIMES[group].bit_length() + 7) // 8
    if group in _ECP:
        return 2 * _ECP[group][1]
    if group in _MONTGOMERY:
        return _MONTGOMERY[group][1]
    raise UnsupportedTransform(f"unsupported key exchange method {transform_name(DhId, group)}")


@dataclass(frozen=True, slots=True)
class KeyExchange:
    """Our half of one key exchange: the KE payload data and the private key behind it."""

    group: DhId
    public_key: bytes
    _private: Any = field(repr=False, compare=False)

    def shared_secret(self, peer_public: bytes) -> bytes:
        """g^ir from the peer's KE data; InvalidKeyExchange if the value is unacceptable."""
        size = public_key_size(self.group)
        if len(peer_public) != size:
            raise InvalidKeyExchange(
                f"{self.group.name} public value must be {size} octets, got {len(peer_public)}"
            )
        if self.group in MODP_PRIMES:
            return self._modp(peer_public, size)
        if self.group in _ECP:
            return self._ecp(peer_public)
        return self._montgomery(peer_public)

    def _modp(self, peer_public: bytes, size: int) -> bytes:
        p = MODP_PRIMES[self.group]
        y = int.from_bytes(peer_public, "big")
        if not 1 < y < p - 1:
            raise InvalidKeyExchange(f"{self.group.name} public value out of range (1, p-1)")
        try:
            peer = _DHPublicNumbers(y, _modp_parameters(self.group).parameter_numbers())
            secret = self._private.exchange(peer.public_key())
        except ValueError as exc:
            raise InvalidKeyExchange(f"{self.group.name} exchange failed: {exc}") from None
        return secret.rjust(size, b"\x00")

    def _ecp(self, peer_public: bytes) -> bytes:
        curve = _ECP[self.group][0]
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + peer_public)
            return self._private.exchange(ec.ECDH(), peer)
        except ValueError as exc:
            raise InvalidKeyExchange(f"{self.group.name} point rejected: {exc}") from None

    def _montgomery(self, peer_public: bytes) -> bytes:
        try:
            peer = _MONTGOMERY_PUBLIC[self.group].from_public_bytes(peer_public)
            secret = self._private.exchange(peer)
        except ValueError as exc:
            raise InvalidKeyExchange(f"{self.group.name} exchange failed: {exc}") from None
        if not any(secret):
            # RFC 7748 §6, RFC 8031 §2.3: an all-zero result means a low-order point.
            raise InvalidKeyExchange(f"{self.group.name} shared secret is all zero")
        return secret


def key_exchange_for(group: DhId | int, rng: Rng) -> KeyExchange:
    """A fresh key pair for ``group``.

    ECP and Curve25519/448 private keys come from ``rng`` (deterministic for a seeded
    RNG). MODP keys are generated by OpenSSL from cached RFC 3526 parameters.
    """
    if group in MODP_PRIMES:
        return _from_modp_key(DhId(group), _modp_parameters(group).generate_private_key())
    if group in _ECP:
        size, order = _ECP[group][1], _ECP[group][2]
        excess = 8 * size - order.bit_length()
        while True:
            # Rejection sampling keeps the scalar uniform in [1, n-1].
            scalar = int.from_bytes(rng.randbytes(size), "big") >> excess
            if 0 < scalar < order:
                return _from_ecp_scalar(DhId(group), scalar)
    if group in _MONTGOMERY:
        cls, size = _MONTGOMERY[group]
        return _from_montgomery_key(DhId(group), cls.from_private_bytes(rng.randbytes(size)))
    raise UnsupportedTransform(f"unsupported key exchange method {transform_name(DhId, group)}")


def key_exchange_from_private(group: DhId | int, private: bytes) -> KeyExchange:
    """A key pair from known private bytes, for known-answer tests.

    ECP: the big-endian scalar (RFC 5903 §8 ``i``/``r``); Curve25519/448: the raw
    private key (RFC 7748 §6). MODP private keys cannot be imported.
    """
    if group in _ECP:
        scalar = int.from_bytes(private, "big")
        if not 0 < scalar < _ECP[group][2]:
            raise CryptoError(f"{DhId(group).name} private scalar out of range")
        return _from_ecp_scalar(DhId(group), scalar)
    if group in _MONTGOMERY:
        cls, size = _MONTGOMERY[group]
        if len(private) != size:
            raise CryptoError(f"{DhId(group).name} private key must be {size} octets")
        return _from_montgomery_key(DhId(group), cls.from_private_bytes(private))
    raise UnsupportedTransform(f"cannot import a private key for {transform_name(DhId, group)}")


@cache
def _modp_parameters(group: DhId) -> Any:
    """The DHParameters of an RFC 3526 group, built once per group."""
    return _DHParameterNumbers(MODP_PRIMES[group], MODP_GENERATOR).parameters()


def _from_modp_key(group: DhId, private: Any) -> KeyExchange:
    size = public_key_size(group)
    y = private.public_key().public_numbers().y
    return KeyExchange(group, y.to_bytes(size, "big"), private)


def _from_ecp_scalar(group: DhId, scalar: int) -> KeyExchange:
    curve, size, _ = _ECP[group]
    private = ec.derive_private_key(scalar, curve)
    point = private.public_key().public_numbers()
    return KeyExchange(
        group, point.x.to_bytes(size, "big") + point.y.to_bytes(size, "big"), private
    )


def _from_montgomery_key(group: DhId, private: Any) -> KeyExchange:
    return KeyExchange(group, private.public_key().public_bytes_raw(), private)
