"""Protection of the Encrypted (SK) and Encrypted Fragment (SKF) payload body.

Body layout (RFC 7296 §3.14): IV | encrypted(payloads | padding | pad length) | ICV.
With CBC + HMAC the ICV covers everything from the IKE header through the ciphertext
(§3.14). With an AEAD the associated data is the IKE header and every payload header up
to and including the SK/SKF header, and the ICV is the AEAD tag (RFC 5282 §5.1, RFC 7634
§4). AEADs are padded with the Pad Length octet alone: their block size is one octet,
as strongSwan also does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag

from .cipher import SALT_SIZE, Cipher
from .errors import CryptoError, IntegrityError
from .integ import Integ

_PAD = [bytes(pad) + bytes((pad,)) for pad in range(16)]
"""Padding and Pad Length octet for each pad length below a block (§3.14)."""


@dataclass(frozen=True, slots=True)
class SkCrypter:
    """Seals and opens SK bodies for one direction's keys (SK_e and SK_a, §2.14)."""

    cipher: Cipher
    integ: Integ | None
    encr_key: bytes = field(repr=False)
    integ_key: bytes = field(default=b"", repr=False)
    _aead: object = field(default=None, init=False, repr=False, compare=False)
    """The AEAD object and salt, built once (a liveness check is two small messages)."""
    _sizes: tuple[int, int, int] = field(default=(0, 0, 1), init=False, repr=False, compare=False)
    """IV, ICV and padding unit in octets, looked up once."""

    def __post_init__(self) -> None:
        if self.cipher.is_aead and self.integ is not None:
            raise CryptoError(f"{self.cipher.id.name} is an AEAD: no integrity transform")
        if not self.cipher.is_aead and self.integ is None:
            raise CryptoError(f"{self.cipher.id.name} needs an integrity transform")
        if len(self.encr_key) != self.cipher.key_size:
            raise CryptoError(
                f"encryption key is {len(self.encr_key)} octets, "
                f"{self.cipher.id.name} needs {self.cipher.key_size}"
            )
        wanted = 0 if self.integ is None else self.integ.key_size
        if len(self.integ_key) != wanted:
            raise CryptoError(f"integrity key is {len(self.integ_key)} octets, expected {wanted}")
        if self.cipher.is_aead:
            aead = (self.cipher.aead(self.encr_key), self.encr_key[-SALT_SIZE:])
            object.__setattr__(self, "_aead", aead)
        icv = self.cipher.icv_size if self.integ is None else self.integ.icv_size
        unit = 1 if self.cipher.is_aead else self.cipher.block_size
        object.__setattr__(self, "_sizes", (self.cipher.iv_size, icv, unit))

    @property
    def iv_size(self) -> int:
        """Octets of IV at the start of the body."""
        return self._sizes[0]

    @property
    def icv_size(self) -> int:
        """Octets of ICV (or AEAD tag) at the end of the body."""
        return self._sizes[1]

    @property
    def _pad_unit(self) -> int:
        return self._sizes[2]

    def sealed_length(self, plaintext_len: int) -> int:
        """Length of the body ``seal`` returns for ``plaintext_len`` octets of payloads."""
        iv_size, icv_size, unit = self._sizes
        padded = plaintext_len + 1
        padded += -padded % unit
        return iv_size + padded + icv_size

    def seal(self, aad: bytes, plaintext: bytes, iv: bytes) -> bytes:
        """IV | ciphertext | ICV for the inner payloads ``plaintext``.

        ``aad`` is every message octet before the IV, lengths already final. ``iv`` comes
        from the caller's RNG (CBC needs it unpredictable, AEADs unique per key).
        """
        iv_size, _, unit = self._sizes
        if len(iv) != iv_size:
            raise CryptoError(f"IV must be {iv_size} octets, got {len(iv)}")
        pad = -(len(plaintext) + 1) % unit
        padded = plaintext + (_PAD[pad] if pad < 16 else bytes(pad) + bytes((pad,)))
        if self._aead is not None:
            aead, salt = self._aead
            return iv + aead.encrypt(salt + iv, padded, aad)
        ciphertext = self.cipher.encrypt(self.encr_key, iv, padded)
        icv = self.integ.sign(self.integ_key, aad + iv + ciphertext)
        return iv + ciphertext + icv

    def open(self, aad: bytes, body: bytes) -> bytes:
        """The inner payloads of ``body`` (IV | ciphertext | ICV), padding removed.

        Every failure, structural or cryptographic, raises IntegrityError: the caller
        drops the message and counts it (RFC 7296 §2.21.1).
        """
        iv_size, icv_size, unit = self._sizes
        encrypted_len = len(body) - iv_size - icv_size
        if encrypted_len < 1 or encrypted_len % unit:
            raise IntegrityError(
                f"encrypted body of {len(body)} octets does not fit IV {iv_size}, "
                f"ICV {icv_size} and {unit}-octet blocks"
            )
        iv = body[:iv_size]
        if self._aead is not None:
            aead, salt = self._aead
            try:
                padded = aead.decrypt(salt + iv, body[iv_size:], aad)
            except InvalidTag:
                raise IntegrityError(f"{self.cipher.id.name} tag mismatch") from None
        else:
            ciphertext = body[iv_size:-icv_size]
            if not self.integ.verify(self.integ_key, aad + body[:-icv_size], body[-icv_size:]):
                raise IntegrityError(f"{self.integ.id.name} ICV mismatch")
            padded = self.cipher.decrypt(self.encr_key, iv, ciphertext)
        pad = padded[-1]
        if pad + 1 > len(padded):
            raise IntegrityError(f"pad length {pad} exceeds the {len(padded)}-octet plaintext")
        return padded[: len(padded) - pad - 1]
