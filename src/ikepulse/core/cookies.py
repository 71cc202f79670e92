"""Stateless cookies against IKE_SA_INIT floods (RFC 7296 §2.6), with a secret that is
replaced every ``lifetime`` seconds; cookies made with the previous one are still accepted
for ``grace`` seconds after the change (§2.6: "should accept cookies from its previous
version for a short time after generating a new one")."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from ..crypto.prf import prf_for
from ..wire.enums import ExchangeType, NotifyType, PayloadType, PrfId
from ..wire.message import FLAG_RESPONSE, Message, encode_message
from ..wire.payloads import NotifyPayload
from .events import Address
from .randomness import Rng


@dataclass(frozen=True, slots=True)
class _Secret:
    version: int
    """Sent in the clear as the cookie's first four octets (§2.6 <VersionIDofSecret>)."""
    key: bytes
    since: float


class Cookies:
    """Cookie = version | prf(secret, Ni | IPi | SPIi): checked without keeping state."""

    def __init__(self, rng: Rng, lifetime: float, grace: float, now: float = 0.0) -> None:
        self._rng = rng
        self.lifetime = lifetime
        self.grace = grace
        self._prf = prf_for(PrfId.HMAC_SHA2_256)
        self._current = _Secret(1, rng.randbytes(32), now)
        self._previous: _Secret | None = None
        self._retired_at = now

    def _rotate(self, now: float) -> None:
        """Draw a new secret once the current one has served ``lifetime`` seconds."""
        due = self._current.since + self.lifetime
        if now < due:
            return
        periods = (now - self._current.since) // self.lifetime  # more than 1 after a lull
        self._previous, self._retired_at = self._current, due
        version = self._current.version % 0xFFFFFFFF + 1
        since = self._current.since + periods * self.lifetime
        self._current = _Secret(version, self._rng.randbytes(32), since)

    def _make(self, secret: _Secret, nonce: bytes, spi_i: bytes, src: Address) -> bytes:
        ip = ipaddress.ip_address(src[0]).packed
        version = secret.version.to_bytes(4, "big")
        return version + self._prf(secret.key, nonce + ip + spi_i)

    def check(self, cookie: bytes, nonce: bytes, spi_i: bytes, src: Address, now: float) -> bool:
        """``cookie`` is one we sent ``src`` for ``nonce`` and ``spi_i`` with the current
        secret, or with the previous one no longer ago than ``grace``."""
        self._rotate(now)
        version = int.from_bytes(cookie[:4], "big")
        if version == self._current.version:
            secret = self._current
        elif (
            self._previous is not None
            and version == self._previous.version
            and now < self._retired_at + self.grace
        ):
            secret = self._previous
        else:
            return False
        return hmac.compare_digest(cookie, self._make(secret, nonce, spi_i, src))

    def answer(self, nonce: bytes, spi_i: bytes, src: Address, now: float) -> bytes:
        """The IKE_SA_INIT response asking ``src`` to repeat its request with a cookie."""
        self._rotate(now)
        cookie = NotifyPayload(NotifyType.COOKIE, self._make(self._current, nonce, spi_i, src))
        return encode_message(
            Message(spi_i, bytes(8), ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0, (cookie,))
        )


def peek(data: bytes) -> tuple[bytes | None, bytes] | None:
    """(the COOKIE notify's data if it is the first payload, the Nonce data) of an
    IKE_SA_INIT request, read from the generic payload headers alone (§3.2, §3.9, §3.10) so
    that a cookie is checked before the request is decoded; None if the chain is broken."""
    kind, at, cookie, nonce = data[16], 28, None, None
    first = True
    while kind != PayloadType.NONE:
        if at + 4 > len(data):
            return None
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 4 or at + length > len(data):
            return None
        body = data[at + 4 : at + length]
        if first and kind == PayloadType.NOTIFY and len(body) >= 4:
            notify = int.from_bytes(body[2:4], "big")
            if notify == NotifyType.COOKIE:
                cookie = body[4 + body[1] :]
        elif kind == PayloadType.NONCE:
            nonce = body
        kind, at, first = data[at], at + length, False
    return None if nonce is None else (cookie, nonce)
