"""The keys of an IKE SA and the SK (or SKF, RFC 7383 §2.5) payloads they protect
(RFC 7296 §2.14, §2.18, §3.14)."""

from __future__ import annotations

from dataclasses import replace

from ..crypto.cipher import cipher_for
from ..crypto.errors import CryptoError
from ..crypto.integ import integ_for
from ..crypto.keys import IkeKeys, derive_ike_keys, rekey_skeyseed, skeyseed
from ..crypto.prf import Prf, prf_for
from ..crypto.sk import SkCrypter
from ..wire.buffer import DecodeError
from ..wire.enums import ExchangeType
from ..wire.message import (
    Message,
    encode_encrypted,
    encode_message,
    open_encrypted,
)
from ..wire.payloads import EncryptedPayload, Payload
from ..wire.skf import open_fragment, seal_fragments, sealed_size
from .errors import Dropped
from .negotiate import Suite
from .randomness import Rng
from .repeats import Repeats


class SkProtection:
    """Suite, nonces, keys, and the two IKE_SA_INIT messages AUTH signs (§2.15)."""

    def __init__(self, rng: Rng) -> None:
        self.rng = rng
        self.suite: Suite | None = None
        self.prf: Prf | None = None
        self.keys: IkeKeys | None = None
        self.nonce_i = self.nonce_r = b""
        self.sent_init = self.received_init = b""
        self._in: SkCrypter | None = None
        self._out: SkCrypter | None = None
        self._repeats = Repeats()

    def derive(
        self,
        suite: Suite,
        shared: bytes,
        nonces: tuple[bytes, bytes],
        spis: tuple[bytes, bytes],
        initiator: bool,
        rekeyed: SkProtection | None = None,
    ) -> None:
        """§2.14 keys; for a rekey (§2.18) SKEYSEED comes from the old SA's SK_d."""
        nonce_i, nonce_r = nonces
        self.suite, self.nonce_i, self.nonce_r = suite, nonce_i, nonce_r
        self.prf = prf_for(suite.prf)
        cipher = cipher_for(*suite.encr)
        integ = integ_for(suite.integ) if suite.integ is not None else None
        if rekeyed is None:
            seed = skeyseed(self.prf, nonce_i, nonce_r, shared)
        else:
            seed = rekey_skeyseed(rekeyed.prf, rekeyed.keys.sk_d, shared, nonce_i, nonce_r)
        keys = derive_ike_keys(
            self.prf, seed, nonce_i, nonce_r, *spis, cipher.key_size, integ.key_size if integ else 0
        )
        self.keys = keys
        mine = (keys.sk_ei, keys.sk_ai) if initiator else (keys.sk_er, keys.sk_ar)
        theirs = (keys.sk_er, keys.sk_ar) if initiator else (keys.sk_ei, keys.sk_ai)
        self._out = SkCrypter(cipher, integ, *mine)
        self._in = SkCrypter(cipher, integ, *theirs)

    def export(self) -> tuple[tuple[int, int | None], int | None, IkeKeys | None]:
        """Encryption (id, key bits), integrity id and the keys: what a key export needs."""
        if self.suite is None:
            return (0, None), None, None
        encr, bits = self.suite.encr
        return (
            (int(encr), bits),
            None if self.suite.integ is None else int(self.suite.integ),
            self.keys,
        )

    def protect(
        self,
        msg: Message,
        payloads: list[Payload],
        keep_init: bool = True,
        max_message: int | None = None,
    ) -> tuple[bytes, ...]:
        """The message's datagrams: ``payloads`` inside an SK payload, or in SKF fragments
        when that would exceed ``max_message`` octets (RFC 7383 §2.5: a message that fits
        goes whole), or in the clear for IKE_SA_INIT (kept, unless ``keep_init`` is off,
        for the AUTH payload)."""
        if msg.exchange != ExchangeType.IKE_SA_INIT:
            plaintext = self._repeats.encode(payloads)  # once: sized, then sealed
            if (
                max_message is not None
                and sealed_size(msg, len(plaintext), self._out) > max_message
            ):
                return tuple(
                    seal_fragments(msg, payloads, self._out, self.rng.randbytes, max_message)
                )
            iv = self.rng.randbytes(self._out.iv_size)
            return (encode_encrypted(msg, payloads, self._out, iv, plaintext),)
        data = encode_message(replace(msg, payloads=tuple(payloads)))
        if keep_init:
            self.sent_init = data
        return (data,)

    def open_fragment(self, raw: bytes, msg: Message) -> bytes:
        """Verify and decrypt one SKF fragment: its chunk of the inner payloads. Raises
        Dropped before keys exist, CryptoError when it does not verify."""
        if self._in is None:
            raise Dropped("unauthenticated", f"{msg.exchange.name} fragment before keys exist")
        return open_fragment(raw, msg, self._in)

    def unprotect(self, raw: bytes, msg: Message) -> list[Payload]:
        """Verify and decrypt; the inner payloads (none for IKE_SA_INIT). Raises Dropped."""
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            if msg.encrypted is not None:
                raise Dropped("malformed", "encrypted IKE_SA_INIT")
            self.received_init = raw
            return []
        if self._in is None:
            raise Dropped("unauthenticated", f"{msg.exchange.name} before keys exist")
        if not isinstance(msg.encrypted, EncryptedPayload):
            raise Dropped("unauthenticated", f"{msg.exchange.name} without an SK payload")
        try:
            return open_encrypted(raw, msg, self._in, self._repeats.decode)
        except CryptoError as exc:
            raise Dropped("invalid_icv", f"SK payload does not verify: {exc}") from exc
        except DecodeError as exc:
            raise Dropped("malformed", f"decrypted payloads: {exc}") from exc
