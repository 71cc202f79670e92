"""Stateless cookies against IKE_SA_INIT floods (RFC 7296 §2.6)."""

from __future__ import annotations

import ipaddress

from ..crypto.prf import prf_for
from ..wire.enums import ExchangeType, NotifyType, PrfId
from ..wire.message import FLAG_RESPONSE, Message, encode_message
from ..wire.payloads import NoncePayload, NotifyPayload
from .events import Address
from .randomness import Rng

_VERSION = b"\0\0\0\1"


class Cookies:
    """Cookie = version | prf(secret, Ni | IPi | SPIi): checked without keeping state."""

    def __init__(self, rng: Rng) -> None:
        self._secret = rng.randbytes(32)
        self._prf = prf_for(PrfId.HMAC_SHA2_256)

    def _for(self, msg: Message, src: Address) -> bytes:
        nonce = next((p.data for p in msg.payloads if isinstance(p, NoncePayload)), b"")
        ip = ipaddress.ip_address(src[0]).packed
        return _VERSION + self._prf(self._secret, nonce + ip + msg.spi_i)

    def valid(self, msg: Message, src: Address) -> bool:
        """The request starts with the cookie we would have sent ``src``."""
        first = msg.payloads[0] if msg.payloads else None
        return (
            isinstance(first, NotifyPayload)
            and first.type == NotifyType.COOKIE
            and first.data == self._for(msg, src)
        )

    def reply(self, msg: Message, src: Address) -> bytes:
        """The IKE_SA_INIT response asking ``src`` to repeat its request with a cookie."""
        cookie = NotifyPayload(NotifyType.COOKIE, self._for(msg, src))
        return encode_message(
            Message(msg.spi_i, bytes(8), ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0, (cookie,))
        )
