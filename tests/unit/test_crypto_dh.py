"""Key exchange groups (RFC 3526, RFC 5903, RFC 8031) and validation of peer values."""

from __future__ import annotations

import random

import pytest

from ikepulse.crypto.dh import (
    MODP_PRIMES,
    SUPPORTED_GROUPS,
    key_exchange_for,
    key_exchange_from_private,
    public_key_size,
)
from ikepulse.crypto.errors import CryptoError, InvalidKeyExchange, UnsupportedTransform
from ikepulse.wire.enums import DhId

SIZES = {
    DhId.MODP_2048: 256,
    DhId.MODP_3072: 384,
    DhId.MODP_4096: 512,
    DhId.ECP_256: 64,
    DhId.ECP_384: 96,
    DhId.ECP_521: 132,
    DhId.CURVE25519: 32,
    DhId.CURVE448: 56,
}
ECP = (DhId.ECP_256, DhId.ECP_384, DhId.ECP_521)
MODP = (DhId.MODP_2048, DhId.MODP_3072, DhId.MODP_4096)


def test_supported_groups_and_sizes():
    assert set(SUPPORTED_GROUPS) == set(SIZES)
    for group, size in SIZES.items():
        assert public_key_size(group) == size
    with pytest.raises(UnsupportedTransform, match="MODP_1024"):
        public_key_size(DhId.MODP_1024)
    with pytest.raises(UnsupportedTransform, match="ECP_256_BP"):
        key_exchange_for(DhId.ECP_256_BP, random.Random(0))


@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
def test_both_sides_agree(group):
    rng = random.Random(int(group))
    a, b = key_exchange_for(group, rng), key_exchange_for(group, rng)
    assert a.group == group
    assert len(a.public_key) == len(b.public_key) == SIZES[group]
    assert a.public_key != b.public_key
    secret = a.shared_secret(b.public_key)
    assert secret == b.shared_secret(a.public_key)
    expected_len = SIZES[group] // 2 if group in ECP else SIZES[group]
    assert len(secret) == expected_len
    assert repr(a).count(a.public_key.hex()) <= 1  # the private key is not in repr


@pytest.mark.parametrize("group", [g for g in SUPPORTED_GROUPS if g not in MODP])
def test_seeded_rng_is_deterministic(group):
    a = key_exchange_for(group, random.Random(7))
    b = key_exchange_for(group, random.Random(7))
    c = key_exchange_for(group, random.Random(8))
    assert a.public_key == b.public_key != c.public_key


@pytest.mark.parametrize("group", SUPPORTED_GROUPS)
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_length_rejected(group, delta):
    ours = key_exchange_for(group, random.Random(1))
    peer = key_exchange_for(group, random.Random(2)).public_key
    bad = peer[:delta] if delta < 0 else peer + b"\x00"
    with pytest.raises(InvalidKeyExchange, match="octets"):
        ours.shared_secret(bad)
    with pytest.raises(InvalidKeyExchange):
        ours.shared_secret(b"")


@pytest.mark.parametrize("group", ECP)
def test_ecp_rejects_off_curve_points(group):
    ours = key_exchange_for(group, random.Random(1))
    peer = key_exchange_for(group, random.Random(2)).public_key
    half = len(peer) // 2
    off_curve = peer[:-1] + bytes([peer[-1] ^ 1])  # y changed
    for bad in (off_curve, bytes(len(peer)), b"\xaa" * len(peer), peer[:half] + peer[:half]):
        with pytest.raises(InvalidKeyExchange):
            ours.shared_secret(bad)
    # The SEC 1 "04" prefix is not part of the IKE encoding (RFC 5903 §7).
    with pytest.raises(InvalidKeyExchange):
        ours.shared_secret(b"\x04" + peer)


@pytest.mark.parametrize("group", MODP)
def test_modp_rejects_out_of_range(group):
    p, size = MODP_PRIMES[group], SIZES[group]
    ours = key_exchange_for(group, random.Random(1))
    for y in (0, 1, p - 1, p, p + 1, 2 ** (8 * size) - 1):
        with pytest.raises(InvalidKeyExchange, match="range"):
            ours.shared_secret(y.to_bytes(size, "big"))
    # y = 2 and y = p - 2 are in range and accepted.
    assert len(ours.shared_secret((2).to_bytes(size, "big"))) == size
    assert len(ours.shared_secret((p - 2).to_bytes(size, "big"))) == size


@pytest.mark.parametrize(("group", "size"), [(DhId.CURVE25519, 32), (DhId.CURVE448, 56)])
def test_montgomery_rejects_low_order_points(group, size):
    ours = key_exchange_for(group, random.Random(1))
    low_order = [bytes(size), (1).to_bytes(size, "little")]
    if group == DhId.CURVE25519:
        # RFC 7748 §5 / libsodium blacklist: a point of order 8.
        low_order.append(
            bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
        )
    for bad in low_order:
        with pytest.raises(InvalidKeyExchange):
            ours.shared_secret(bad)


def test_import_checks():
    with pytest.raises(CryptoError):
        key_exchange_from_private(DhId.ECP_256, bytes(32))
    with pytest.raises(CryptoError):
        key_exchange_from_private(DhId.CURVE25519, bytes(31))
    with pytest.raises(UnsupportedTransform):
        key_exchange_from_private(DhId.MODP_2048, b"\x01" * 32)


def _pi_times_2_to(bits: int) -> int:
    """floor(pi * 2**bits) by Machin's formula, exact integer arithmetic."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inv(x: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> guard


@pytest.mark.parametrize(
    ("group", "bits", "offset"),
    [
        (DhId.MODP_2048, 2048, 124476),
        (DhId.MODP_3072, 3072, 1690314),
        (DhId.MODP_4096, 4096, 240904),
    ],
)
def test_rfc3526_primes_match_their_formula(group, bits, offset):
    """RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * ( [2^(n-130) pi] + offset )."""
    expected = 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_times_2_to(bits - 130) + offset)
    assert MODP_PRIMES[group] == expected


ORDERS = {  # SEC 2 v2 §2.4.2, §2.5.1, §2.6.1
    DhId.ECP_256: int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16),
    DhId.ECP_384: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    DhId.ECP_521: int(
        "01" + "FF" * 32 + "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16
    ),
}


@pytest.mark.parametrize("group", ECP)
def test_ecp_scalar_range(group):
    """(n-1)G = -G, and n itself is refused: the group order is right."""
    n, size = ORDERS[group], SIZES[group] // 2
    one = key_exchange_from_private(group, (1).to_bytes(size, "big"))
    minus_one = key_exchange_from_private(group, (n - 1).to_bytes(size, "big"))
    assert minus_one.public_key[:size] == one.public_key[:size]
    assert minus_one.public_key[size:] != one.public_key[size:]
    with pytest.raises(CryptoError):
        key_exchange_from_private(group, n.to_bytes(size, "big"))


class ScriptedRng:
    """Returns the given byte strings in order."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def randbytes(self, n: int) -> bytes:
        chunk = self.chunks.pop(0)
        assert len(chunk) == n
        return chunk


def test_ecp_private_key_rejection_sampling():
    """Scalars 0 and >= n are drawn again, not reduced."""
    five = (5).to_bytes(32, "big")
    rng = ScriptedRng(b"\xff" * 32, bytes(32), five)
    kex = key_exchange_for(DhId.ECP_256, rng)
    assert kex.public_key == key_exchange_from_private(DhId.ECP_256, five).public_key
    assert rng.chunks == []


def test_montgomery_private_key_from_rng():
    raw = bytes(range(32))
    kex = key_exchange_for(DhId.CURVE25519, ScriptedRng(raw))
    assert kex.public_key == key_exchange_from_private(DhId.CURVE25519, raw).public_key
