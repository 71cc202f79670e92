"""One unidirectional ESP SA: seal and open packets (RFC 4303).

Suites: AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-CBC with HMAC-SHA1/SHA2
(RFC 3602, RFC 4868). Sequence numbers are 32-bit or extended (ESN, RFC 4303 §2.2.1).
"""

from __future__ import annotations

import hmac as _hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hmac as _hmac_prim
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..crypto.integ import integ_for
from ..wire.enums import EncrId, IntegId
from .replay import DEFAULT_WINDOW, ReplayWindow

SALT = 4
NEXT_IPV4, NEXT_IPV6 = 4, 41
_HEADER = struct.Struct("!4sI")
_TRAILERS = [[bytes(range(1, n + 1)) + bytes((n, nh)) for n in range(256)] for nh in range(256)]
"""Padding (1, 2, 3, ...), pad length and next header (RFC 4303 §2.4), made once."""


class EspDrop(Exception):
    """A packet to drop; ``counter`` names the statistic (replay, auth_failed, malformed)."""

    def __init__(self, counter: str, reason: str) -> None:
        super().__init__(reason)
        self.counter = counter


class SaExpired(Exception):
    """The sequence number would wrap: the SA must be replaced (RFC 4303 §3.3.3)."""


class EspSa:
    """``spi`` is the SPI on the wire; outbound SAs ``seal``, inbound SAs ``open``."""

    def __init__(
        self,
        spi: bytes,
        encr: tuple[EncrId, int | None],
        integ: IntegId | None,
        encr_key: bytes,
        integ_key: bytes = b"",
        *,
        esn: bool = False,
        rng=None,
        replay_window: int = DEFAULT_WINDOW,
    ) -> None:
        self.spi = spi
        self.esn = esn
        self.seq = 0
        self.replay = ReplayWindow(replay_window)
        self._rng = rng
        encr_id = encr[0]
        self.aead = encr_id in (EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305)
        if self.aead:
            cls = ChaCha20Poly1305 if encr_id == EncrId.CHACHA20_POLY1305 else AESGCM
            self._aead = cls(encr_key[:-SALT])
            self._salt = encr_key[-SALT:]
            self.iv_size, self.icv_size, self.block = 8, 16, 4
        elif encr_id == EncrId.AES_CBC:
            if integ is None:
                raise ValueError("AES-CBC needs an integrity algorithm")
            self._algorithm = algorithms.AES(encr_key)
            self._integ = integ_for(integ)
            self._integ_key = integ_key
            self.iv_size, self.icv_size, self.block = 16, self._integ.icv_size, 16
        else:
            raise ValueError(f"unsupported ESP encryption {EncrId(encr_id).name}")
        self.limit = (1 << 64) - 1 if esn else (1 << 32) - 1

    # --- outbound ------------------------------------------------------------------------

    def seal(self, payload: bytes, next_header: int) -> bytes:
        """ESP-protect ``payload`` (an IP packet in tunnel mode). Raises SaExpired."""
        if self.seq >= self.limit:
            raise SaExpired(f"SPI {self.spi.hex()}: sequence number exhausted")
        self.seq = seq = self.seq + 1
        header = _HEADER.pack(self.spi, seq & 0xFFFFFFFF)
        pad_len = -(len(payload) + 2) % self.block
        trailer = _TRAILERS[next_header][pad_len]
        if self.aead:
            iv = seq.to_bytes(8, "big")
            return (
                header
                + iv
                + self._aead.encrypt(self._salt + iv, payload + trailer, self._aad(header, seq))
            )
        iv = self._rng.randbytes(16)
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        body = header + iv + encryptor.update(payload + trailer) + encryptor.finalize()
        return body + self._icv(body, seq)

    def _aad(self, header: bytes, seq: int) -> bytes:
        """SPI | [ESN high] | seq low (RFC 4106 §5, RFC 7634 §2.1)."""
        if self.esn:
            return header[:4] + (seq >> 32).to_bytes(4, "big") + header[4:]
        return header

    def _icv(self, body: bytes, seq: int) -> bytes:
        """HMAC over the packet, plus the ESN high bits when negotiated (RFC 4303 §3.3.2.1)."""
        mac = _hmac_prim.HMAC(self._integ_key, self._integ.algorithm())
        mac.update(body)
        if self.esn:
            mac.update((seq >> 32).to_bytes(4, "big"))
        return mac.finalize()[: self.icv_size]

    # --- inbound -------------------------------------------------------------------------

    def open(self, packet: bytes) -> tuple[bytes, int]:
        """Verify and decrypt; returns (payload, next header). Raises EspDrop."""
        if len(packet) < 8 + self.iv_size + self.icv_size + self.block:
            raise EspDrop("malformed", f"ESP packet of {len(packet)} bytes is too short")
        seq32 = int.from_bytes(packet[4:8], "big")
        replay = self.replay
        seq = ReplayWindow.infer_esn(seq32, replay.top, replay.size) if self.esn else seq32
        if not replay.check(seq):
            raise EspDrop("replay", f"sequence number {seq} replayed or too old")
        iv = packet[8 : 8 + self.iv_size]
        if self.aead:
            try:
                plain = self._aead.decrypt(
                    self._salt + iv, packet[8 + self.iv_size :], self._aad(packet[:8], seq)
                )
            except InvalidTag:
                raise EspDrop("auth_failed", "ICV does not verify") from None
        else:
            body, icv = packet[: -self.icv_size], packet[-self.icv_size :]
            if not _hmac.compare_digest(self._icv(body, seq), icv):
                raise EspDrop("auth_failed", "ICV does not verify")
            ciphertext = body[8 + self.iv_size :]
            if len(ciphertext) % 16:
                raise EspDrop("malformed", "ciphertext is not a multiple of the block size")
            decryptor = Cipher(self._algorithm, modes.CBC(iv)).decryptor()
            plain = decryptor.update(ciphertext) + decryptor.finalize()
        pad_len, next_header = plain[-2], plain[-1]
        if pad_len + 2 > len(plain):
            raise EspDrop("malformed", f"pad length {pad_len} exceeds the payload")
        replay.accept(seq)
        return plain[: -2 - pad_len], next_header
