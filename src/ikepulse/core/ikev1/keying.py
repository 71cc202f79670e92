"""Phase 1 key material and the CBC IV chain of every exchange (RFC 2409 §5, App. B).

Phase 1 chains its IV from hash(g^xi | g^xr); each Quick Mode or Informational exchange
starts from hash(last phase 1 IV | M-ID) and chains on inside its message ID. A message
moves its exchange's IV on only once it is accepted (``advance``), so a forged one cannot
desynchronise the chain.
"""

from __future__ import annotations

from ...crypto.ikev1 import (
    Phase1Keys,
    cbc_for,
    derive_phase1,
    exchange_iv,
    initial_iv,
    prf_v1,
)
from ...wire.isakmp_enums import EncrV1
from .proposals import _V1_ENCR, Phase1Choice


class V1Keying:
    """The keys of one ISAKMP SA, once ``derive`` ran."""

    def __init__(self) -> None:
        self.choice: Phase1Choice | None = None
        self.keys: Phase1Keys | None = None
        self._ivs: dict[int, bytes] = {}
        self._phase1_iv = b""

    @property
    def suite(self):
        """The negotiated suite, shown in status as an IKEv2 one would be."""
        return None if self.choice is None else self.choice.suite

    @property
    def ready(self) -> bool:
        return self.keys is not None

    def chosen(self, choice: Phase1Choice) -> None:
        self.choice = choice
        self.prf = prf_v1(choice.hash)
        encr, bits = choice.suite.encr
        self.cipher = cbc_for(EncrV1(_V1_ENCR[encr]), bits)

    def derive(self, skeyid: bytes, g_xy: bytes, g_xi: bytes, g_xr: bytes, cookies) -> None:
        """SKEYID_d/a/e and the encryption key (§5); phase 1's first IV."""
        self.keys = derive_phase1(self.prf, skeyid, g_xy, *cookies, self.cipher.key_size)
        self._ivs[0] = initial_iv(self.choice.hash, g_xi, g_xr, self.cipher.block_size)

    def phase1_complete(self) -> None:
        """Phase 1's last IV seeds every later exchange (App. B)."""
        self._phase1_iv = self._ivs.pop(0)

    def _iv(self, message_id: int) -> bytes:
        if message_id not in self._ivs:
            block = self.cipher.block_size
            self._ivs[message_id] = exchange_iv(
                self.choice.hash, self._phase1_iv, message_id, block
            )
        return self._ivs[message_id]

    def seal(self, message_id: int, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt(self.keys.enc_key, self._iv(message_id), plaintext)
        self._ivs[message_id] = ciphertext[-self.cipher.block_size :]
        return ciphertext

    def open(self, message_id: int, ciphertext: bytes) -> tuple[bytes, bytes]:
        """The plaintext and the IV that follows it (see ``advance``)."""
        plaintext = self.cipher.decrypt(self.keys.enc_key, self._iv(message_id), ciphertext)
        return plaintext, ciphertext[-self.cipher.block_size :]

    def advance(self, message_id: int, iv: bytes) -> bytes:
        """Move the exchange's IV on; the one it had (to restore if the message fails)."""
        before = self._iv(message_id)
        self._ivs[message_id] = iv
        return before

    def forget(self, message_id: int) -> None:
        """The exchange is over: drop its IV (a later one with the same M-ID starts anew)."""
        self._ivs.pop(message_id, None)

    def export(self) -> tuple:
        """IKEv1 keys are not exported for Wireshark (only IKEv2's)."""
        return ()
