"""IKEv1 keying: SKEYID and its children, HASH_I/R, IVs, CBC, Quick Mode hashes, KEYMAT
and NAT-D (RFC 2409 §5, §5.5, App. B; RFC 3947 §3.2).

Every size a caller can get wrong is checked here and refused with ``LengthError``;
an encrypted body that is not a whole number of blocks is an ``IntegrityError``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..wire.enums import PrfId
from ..wire.isakmp_enums import AuthMethodV1, EncrV1, HashV1
from .errors import CryptoError, IntegrityError, UnsupportedTransform, transform_name
from .prf import Prf, prf_for

COOKIE_SIZE = 8
"""CKY-I and CKY-R are 8 octets (RFC 2408 §3.1)."""
MAX_EXPANSION_BLOCKS = 255
"""Upper bound on K1 | K2 | ... blocks (App. B, §5.5): far beyond any real key."""

_HASHES: dict[int, tuple[type[hashes.HashAlgorithm], PrfId]] = {
    HashV1.SHA1: (hashes.SHA1, PrfId.HMAC_SHA1),
    HashV1.SHA2_256: (hashes.SHA256, PrfId.HMAC_SHA2_256),
    HashV1.SHA2_384: (hashes.SHA384, PrfId.HMAC_SHA2_384),
    HashV1.SHA2_512: (hashes.SHA512, PrfId.HMAC_SHA2_512),
}
_ECDSA_PRF = {
    AuthMethodV1.ECDSA_256: HashV1.SHA2_256,
    AuthMethodV1.ECDSA_384: HashV1.SHA2_384,
    AuthMethodV1.ECDSA_521: HashV1.SHA2_512,
}


class LengthError(CryptoError):
    """An input of a size the IKEv1 formulas do not allow (cookie, key, IV, SPI...)."""


def _check(name: str, value: bytes, *sizes: int) -> None:
    if len(value) not in sizes:
        wanted = " or ".join(str(s) for s in sizes)
        raise LengthError(f"{name} must be {wanted} octets, got {len(value)}")


def _nonempty(name: str, value: bytes) -> None:
    if not value:
        raise LengthError(f"{name} must not be empty")


def _hash_algorithm(hash_id: HashV1 | int) -> tuple[type[hashes.HashAlgorithm], PrfId]:
    entry = _HASHES.get(hash_id)
    if entry is None:  # MD5 and Tiger are refused (RFC 8247 §2.4)
        raise UnsupportedTransform(f"unsupported IKEv1 hash {transform_name(HashV1, hash_id)}")
    return entry


def prf_v1(hash_id: HashV1 | int) -> Prf:
    """The HMAC of the negotiated Hash Algorithm (RFC 2409 §4: no PRF attribute means
    the HMAC of the hash). MD5, Tiger and unknown IDs raise UnsupportedTransform."""
    return prf_for(_hash_algorithm(hash_id)[1])


def phase1_auth_prf(hash_id: HashV1 | int, method: AuthMethodV1 | int) -> Prf:
    """The PRF of HASH_I/HASH_R: the negotiated one, except for the ECDSA methods where
    strongSwan uses HMAC-SHA2 of the curve's size (ECDSA_256 -> SHA2-256, ...)."""
    return prf_v1(_ECDSA_PRF.get(method, hash_id))


def hash_v1(hash_id: HashV1 | int, data: bytes) -> bytes:
    """The plain negotiated hash (IVs, NAT-D)."""
    digest = hashes.Hash(_hash_algorithm(hash_id)[0]())
    digest.update(data)
    return digest.finalize()


def _mid(message_id: int) -> bytes:
    if not 0 <= message_id < 1 << 32:
        raise LengthError(f"message ID {message_id} does not fit 32 bits")
    return message_id.to_bytes(4, "big")


# --- Phase 1 keys (§5) ------------------------------------------------------------


def skeyid_psk(prf: Prf, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """SKEYID = prf(pre-shared-key, Ni_b | Nr_b) (§5)."""
    _nonempty("pre-shared key", psk)
    _nonempty("Ni_b", ni_b)
    _nonempty("Nr_b", nr_b)
    return prf(psk, ni_b + nr_b)


def skeyid_signature(prf: Prf, ni_b: bytes, nr_b: bytes, g_xy: bytes) -> bytes:
    """SKEYID = prf(Ni_b | Nr_b, g^xy) for signature authentication (§5)."""
    _nonempty("Ni_b", ni_b)
    _nonempty("Nr_b", nr_b)
    _nonempty("g^xy", g_xy)
    return prf(ni_b + nr_b, g_xy)


@dataclass(frozen=True, slots=True)
class Phase1Keys:
    """SKEYID and its derivatives; ``enc_key`` is SKEYID_e cut or expanded (App. B)."""

    skeyid: bytes
    skeyid_d: bytes
    skeyid_a: bytes
    skeyid_e: bytes
    enc_key: bytes


def expand_key(prf: Prf, skeyid_e: bytes, size: int) -> bytes:
    """The encryption key from SKEYID_e (App. B): its first ``size`` octets when long
    enough, else the first ``size`` of K1 | K2 | ... with K1 = prf(SKEYID_e, 0) and
    Kn = prf(SKEYID_e, Kn-1); 0 is a single zero octet, as strongSwan and Libreswan do."""
    _nonempty("SKEYID_e", skeyid_e)
    if not 0 < size <= MAX_EXPANSION_BLOCKS * prf.output_size:
        raise LengthError(f"encryption key size {size} out of range")
    if len(skeyid_e) >= size:
        return skeyid_e[:size]
    out, block = b"", b"\x00"
    while len(out) < size:
        block = prf(skeyid_e, block)
        out += block
    return out[:size]


def derive_phase1(
    prf: Prf, skeyid: bytes, g_xy: bytes, cky_i: bytes, cky_r: bytes, enc_key_size: int
) -> Phase1Keys:
    """SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0), SKEYID_a = prf(SKEYID, SKEYID_d |
    g^xy | CKY-I | CKY-R | 1), SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
    (§5), and the ``enc_key_size``-octet encryption key (App. B)."""
    _nonempty("SKEYID", skeyid)
    _nonempty("g^xy", g_xy)
    _check("CKY-I", cky_i, COOKIE_SIZE)
    _check("CKY-R", cky_r, COOKIE_SIZE)
    tail = g_xy + cky_i + cky_r
    skeyid_d = prf(skeyid, tail + b"\x00")
    skeyid_a = prf(skeyid, skeyid_d + tail + b"\x01")
    skeyid_e = prf(skeyid, skeyid_a + tail + b"\x02")
    enc_key = expand_key(prf, skeyid_e, enc_key_size)
    return Phase1Keys(skeyid, skeyid_d, skeyid_a, skeyid_e, enc_key)


def phase1_hash(
    prf: Prf,
    skeyid: bytes,
    *,
    initiator: bool,
    g_xi: bytes,
    g_xr: bytes,
    cky_i: bytes,
    cky_r: bytes,
    sai_b: bytes,
    id_b: bytes,
) -> bytes:
    """HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b), or HASH_R =
    prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b) (§5). ``sai_b`` and
    ``id_b`` are payload bodies without their generic headers."""
    _nonempty("SKEYID", skeyid)
    _nonempty("g^xi", g_xi)
    _nonempty("g^xr", g_xr)
    _check("CKY-I", cky_i, COOKIE_SIZE)
    _check("CKY-R", cky_r, COOKIE_SIZE)
    _nonempty("SAi_b", sai_b)
    _nonempty("ID_b", id_b)
    if initiator:
        return prf(skeyid, g_xi + g_xr + cky_i + cky_r + sai_b + id_b)
    return prf(skeyid, g_xr + g_xi + cky_r + cky_i + sai_b + id_b)


# --- IVs and CBC (§5.3, App. B) -------------------------------------------------------


def _iv(hash_id: HashV1 | int, data: bytes, block_size: int) -> bytes:
    digest = hash_v1(hash_id, data)
    if not 0 < block_size <= len(digest):
        raise LengthError(f"a {len(digest)}-octet hash cannot make a {block_size}-octet IV")
    return digest[:block_size]


def initial_iv(hash_id: HashV1 | int, g_xi: bytes, g_xr: bytes, block_size: int) -> bytes:
    """Phase 1 IV = hash(g^xi | g^xr) cut to the block size (App. B)."""
    _nonempty("g^xi", g_xi)
    _nonempty("g^xr", g_xr)
    return _iv(hash_id, g_xi + g_xr, block_size)


def exchange_iv(
    hash_id: HashV1 | int, last_phase1_iv: bytes, message_id: int, block_size: int
) -> bytes:
    """First IV of a Quick Mode or Informational exchange: hash(last phase 1 CBC output
    block | M-ID) cut to the block size (App. B)."""
    _check("last phase 1 IV", last_phase1_iv, block_size)
    return _iv(hash_id, last_phase1_iv + _mid(message_id), block_size)


def next_iv(ciphertext: bytes, block_size: int) -> bytes:
    """The IV of the next message in the same exchange: the last ciphertext block of
    the previous one (App. B)."""
    if block_size <= 0 or not ciphertext or len(ciphertext) % block_size:
        raise LengthError(f"{len(ciphertext)} octets are not whole {block_size}-octet blocks")
    return ciphertext[-block_size:]


@dataclass(frozen=True, slots=True)
class CbcCipher:
    """A phase 1 CBC cipher (sizes in octets but ``key_bits``).

    ``encrypt`` appends ``block_size - len % block_size`` zero octets (1..block_size,
    a whole block when already aligned), exactly what strongSwan sends; RFC 2409 §5.3
    only asks for zero padding to the block. ``decrypt`` returns the padding too: the
    payload chain ends where its last payload says, so strongSwan (and we) ignore it.
    """

    id: EncrV1
    key_bits: int
    key_size: int
    block_size: int

    def encrypt(self, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
        pad = self.block_size - len(plaintext) % self.block_size
        encryptor = self._cipher(key, iv).encryptor()
        return encryptor.update(plaintext + bytes(pad)) + encryptor.finalize()

    def decrypt(self, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        """IntegrityError when ``ciphertext`` is empty or not whole blocks."""
        if not ciphertext or len(ciphertext) % self.block_size:
            raise IntegrityError(
                f"{self.id.name} body of {len(ciphertext)} octets is not whole "
                f"{self.block_size}-octet blocks"
            )
        decryptor = self._cipher(key, iv).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()

    def _cipher(self, key: bytes, iv: bytes) -> Cipher:
        _check(f"{self.id.name} key", key, self.key_size)
        _check(f"{self.id.name} IV", iv, self.block_size)
        algorithm = TripleDES(key) if self.id == EncrV1.TRIPLE_DES else algorithms.AES(key)
        return Cipher(algorithm, modes.CBC(iv))


def cbc_for(encr: EncrV1 | int, key_bits: int | None) -> CbcCipher:
    """AES-CBC with a Key Length of 128, 192 or 256 (required), or 3DES (None or 192);
    anything else raises UnsupportedTransform."""
    name = transform_name(EncrV1, encr)
    if encr == EncrV1.AES_CBC:
        if key_bits not in (128, 192, 256):
            raise UnsupportedTransform(f"unsupported key length {key_bits!r} for {name}")
        return CbcCipher(EncrV1.AES_CBC, key_bits, key_bits // 8, 16)
    if encr == EncrV1.TRIPLE_DES:
        if key_bits not in (None, 192):
            raise UnsupportedTransform(f"unsupported key length {key_bits!r} for {name}")
        return CbcCipher(EncrV1.TRIPLE_DES, 192, 24, 8)
    raise UnsupportedTransform(f"unsupported IKEv1 encryption algorithm {name}")


# --- Phase 2 (§5.5, §5.7) -------------------------------------------------------------


def quick_hash1(prf: Prf, skeyid_a: bytes, message_id: int, after_hash: bytes) -> bytes:
    """HASH(1) = prf(SKEYID_a, M-ID | message after HASH) (§5.5); also the
    Informational and Transaction HASH (§5.7)."""
    _nonempty("SKEYID_a", skeyid_a)
    return prf(skeyid_a, _mid(message_id) + after_hash)


def quick_hash2(
    prf: Prf, skeyid_a: bytes, message_id: int, ni_b: bytes, after_hash: bytes
) -> bytes:
    """HASH(2) = prf(SKEYID_a, M-ID | Ni_b | message after HASH) (§5.5)."""
    _nonempty("SKEYID_a", skeyid_a)
    _nonempty("Ni_b", ni_b)
    return prf(skeyid_a, _mid(message_id) + ni_b + after_hash)


def quick_hash3(prf: Prf, skeyid_a: bytes, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b) (§5.5)."""
    _nonempty("SKEYID_a", skeyid_a)
    _nonempty("Ni_b", ni_b)
    _nonempty("Nr_b", nr_b)
    return prf(skeyid_a, b"\x00" + _mid(message_id) + ni_b + nr_b)


def keymat_v1(
    prf: Prf,
    skeyid_d: bytes,
    protocol: int,
    spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    length: int,
    g_qm: bytes = b"",
) -> bytes:
    """KEYMAT = K1 | K2 | ... with K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b
    | Nr_b) and Kn = prf(SKEYID_d, Kn-1 | that seed) (§5.5), cut to ``length``. ``spi``
    is the 4-octet SPI of the receiving side of the SA being keyed."""
    _nonempty("SKEYID_d", skeyid_d)
    if not 0 <= protocol <= 255:
        raise LengthError(f"protocol {protocol} does not fit one octet")
    _check("SPI", spi, 4)
    _nonempty("Ni_b", ni_b)
    _nonempty("Nr_b", nr_b)
    if not 0 < length <= MAX_EXPANSION_BLOCKS * prf.output_size:
        raise LengthError(f"KEYMAT length {length} out of range")
    seed = g_qm + bytes((protocol,)) + spi + ni_b + nr_b
    out, block = b"", b""
    while len(out) < length:
        block = prf(skeyid_d, block + seed)
        out += block
    return out[:length]


def natd_hash(hash_id: HashV1 | int, cky_i: bytes, cky_r: bytes, address: str, port: int) -> bytes:
    """NAT-D = HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash (RFC 3947 §3.2);
    IP is 4 octets for IPv4, 16 for IPv6, Port 2 octets in network order."""
    _check("CKY-I", cky_i, COOKIE_SIZE)
    _check("CKY-R", cky_r, COOKIE_SIZE)
    if not isinstance(address, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
        raise LengthError(f"not an IP address: {address!r}")
    try:
        packed = ipaddress.ip_address(address).packed
    except ValueError:
        raise LengthError(f"not an IP address: {address!r}") from None
    if not 0 <= port <= 0xFFFF:
        raise LengthError(f"port {port} does not fit 16 bits")
    return hash_v1(hash_id, cky_i + cky_r + packed + port.to_bytes(2, "big"))
