"""Key material: SKEYSEED, the IKE SA keys and CHILD SA KEYMAT (RFC 7296 §2.14, §2.17,
§2.18).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import CryptoError
from .prf import Prf, prf_plus


def skeyseed(prf: Prf, ni: bytes, nr: bytes, shared_secret: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir) (§2.14; HMAC PRFs take the whole nonces as key)."""
    return prf(ni + nr, shared_secret)


def rekey_skeyseed(
    prf_old: Prf, sk_d_old: bytes, shared_secret: bytes, ni: bytes, nr: bytes
) -> bytes:
    """SKEYSEED of a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr) (§2.18).

    ``prf_old`` is the old IKE SA's PRF; the new SA's keys then come from
    ``derive_ike_keys`` with the new PRF, nonces and SPIs.
    """
    return prf_old(sk_d_old, shared_secret + ni + nr)


@dataclass(frozen=True, slots=True)
class IkeKeys:
    """The seven IKE SA keys of §2.14 (SK_ai/SK_ar are empty with an AEAD).

    ``repr`` hides the key material so that logging an SA never leaks it.
    """

    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)


def derive_ike_keys(
    prf: Prf,
    skeyseed: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    encr_key_size: int,
    integ_key_size: int,
) -> IkeKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr |
    SPIi | SPIr) (§2.14).

    SK_d, SK_pi and SK_pr are ``prf.key_size`` octets; ``encr_key_size`` includes any
    AEAD salt; ``integ_key_size`` is 0 with an AEAD.
    """
    sizes = (
        prf.key_size,
        integ_key_size,
        integ_key_size,
        encr_key_size,
        encr_key_size,
        prf.key_size,
        prf.key_size,
    )
    stream = prf_plus(prf, skeyseed, ni + nr + spi_i + spi_r, sum(sizes))
    return IkeKeys(*_split(stream, sizes))


def child_keymat(
    prf: Prf, sk_d: bytes, ni: bytes, nr: bytes, length: int, shared_secret: bytes = b""
) -> bytes:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (§2.17).

    ``shared_secret`` is set only for a CREATE_CHILD_SA exchange with a KE payload.
    """
    return prf_plus(prf, sk_d, shared_secret + ni + nr, length)


@dataclass(frozen=True, slots=True)
class ChildKeys:
    """One CHILD SA's keys per direction (§2.17); integ keys are empty with an AEAD.

    ``encr_i``/``integ_i`` protect initiator-to-responder traffic, ``encr_r``/
    ``integ_r`` the other direction. ``repr`` hides the key material.
    """

    encr_i: bytes = field(repr=False)
    integ_i: bytes = field(repr=False)
    encr_r: bytes = field(repr=False)
    integ_r: bytes = field(repr=False)


def split_child_keys(keymat: bytes, encr_key_size: int, integ_key_size: int) -> ChildKeys:
    """Slice KEYMAT as §2.17 orders it: initiator-to-responder encryption then
    integrity key, then responder-to-initiator encryption then integrity key.

    ``keymat`` must be exactly 2 * (encr_key_size + integ_key_size) octets.
    """
    sizes = (encr_key_size, integ_key_size, encr_key_size, integ_key_size)
    if len(keymat) != sum(sizes):
        raise CryptoError(f"KEYMAT is {len(keymat)} octets, expected {sum(sizes)}")
    return ChildKeys(*_split(keymat, sizes))


def _split(data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    return out
