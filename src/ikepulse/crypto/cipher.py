"""Encryption transforms by IANA ID: AES-CBC, AES-GCM-16, ChaCha20-Poly1305.

AES-CBC: RFC 3602. AES-GCM with a 16-octet ICV: RFC 4106 / RFC 5282 (IKE). ChaCha20-
Poly1305: RFC 7634. For the AEADs the keying material is the cipher key followed by a
4-octet salt, and the nonce is salt || 8-octet IV (RFC 4106 §4, RFC 5282 §7.1,
RFC 7634 §2 and §4).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..wire.enums import EncrId
from .errors import CryptoError, IntegrityError, UnsupportedTransform, transform_name

SALT_SIZE = 4
"""Octets of salt at the end of AEAD keying material (RFC 4106 §4, RFC 7634 §4)."""

AEAD_ICV_SIZE = 16
AES_KEY_BITS = (128, 192, 256)


@dataclass(frozen=True, slots=True)
class Cipher:
    """One encryption transform with its sizes (all in octets but ``key_bits``).

    ``key_size`` is the keying material taken from prf+, salt included for AEADs.
    ``block_size`` is the padding unit: 16 for CBC; 4 for the AEADs, which are stream
    modes but whose ESP trailer must still end on a 4-octet boundary (RFC 4303 §2.4).
    The SK payload pads AEADs to one octet instead (see ``crypto.sk``).
    """

    id: EncrId
    key_bits: int
    is_aead: bool
    key_size: int
    block_size: int
    iv_size: int
    icv_size: int

    def encrypt(self, key: bytes, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt; AEADs return ciphertext || tag, CBC ignores ``aad``."""
        self._check(key, iv)
        if self.is_aead:
            return self._aead(key).encrypt(key[-SALT_SIZE:] + iv, plaintext, aad)
        if len(plaintext) % self.block_size:
            raise CryptoError(
                f"{self.id.name} plaintext of {len(plaintext)} octets is not a multiple "
                f"of the {self.block_size}-octet block"
            )
        encryptor = _Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return encryptor.update(plaintext) + encryptor.finalize()

    def decrypt(self, key: bytes, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
        """Decrypt; an AEAD tag mismatch raises IntegrityError."""
        self._check(key, iv)
        if self.is_aead:
            if len(ciphertext) < self.icv_size:
                raise IntegrityError(f"{self.id.name} ciphertext shorter than its tag")
            try:
                return self._aead(key).decrypt(key[-SALT_SIZE:] + iv, ciphertext, aad)
            except InvalidTag:
                raise IntegrityError(f"{self.id.name} tag mismatch") from None
        if len(ciphertext) % self.block_size:
            raise CryptoError(
                f"{self.id.name} ciphertext of {len(ciphertext)} octets is not a multiple "
                f"of the {self.block_size}-octet block"
            )
        decryptor = _Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()

    def aead(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        """The AEAD object for ``key`` (salt stripped): build it once per key and keep it,
        it costs as much as sealing a small message."""
        return self._aead(key)

    def _aead(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if self.id == EncrId.CHACHA20_POLY1305:
            return ChaCha20Poly1305(key[:-SALT_SIZE])
        return AESGCM(key[:-SALT_SIZE])

    def _check(self, key: bytes, iv: bytes) -> None:
        if len(key) != self.key_size:
            raise CryptoError(f"{self.id.name} needs a {self.key_size}-octet key, got {len(key)}")
        if len(iv) != self.iv_size:
            raise CryptoError(f"{self.id.name} needs a {self.iv_size}-octet IV, got {len(iv)}")


def cipher_for(encr_id: EncrId | int, key_bits: int | None = None) -> Cipher:
    """The cipher for transform type 1 ``encr_id`` with Key Length attribute ``key_bits``.

    AES_CBC and AES_GCM_16 require ``key_bits`` (128, 192 or 256, RFC 7296 §3.3.5);
    CHACHA20_POLY1305 has a fixed 256-bit key and takes None (or 256, RFC 7634 §2).
    """
    name = transform_name(EncrId, encr_id)
    if encr_id in (EncrId.AES_CBC, EncrId.AES_GCM_16):
        if key_bits not in AES_KEY_BITS:
            raise UnsupportedTransform(f"unsupported key length {key_bits!r} for {name}")
        if encr_id == EncrId.AES_CBC:
            return Cipher(EncrId.AES_CBC, key_bits, False, key_bits // 8, 16, 16, 0)
        return Cipher(
            EncrId.AES_GCM_16, key_bits, True, key_bits // 8 + SALT_SIZE, 4, 8, AEAD_ICV_SIZE
        )
    if encr_id == EncrId.CHACHA20_POLY1305:
        if key_bits not in (None, 256):
            raise UnsupportedTransform(f"unsupported key length {key_bits!r} for {name}")
        return Cipher(EncrId.CHACHA20_POLY1305, 256, True, 32 + SALT_SIZE, 4, 8, AEAD_ICV_SIZE)
    raise UnsupportedTransform(f"unsupported encryption algorithm {name}")
