"""Quick Crash Detection (RFC 6290): a token that proves an unprotected INVALID_IKE_SPI.

Each side hands its peer, inside the protected IKE_AUTH exchange, a token derived from a
secret that survives restarts and from the IKE SPIs. After a crash the node has lost its
keys but can still compute the token, so its INVALID_IKE_SPI answer is believable at once.
"""

from __future__ import annotations

import hmac
from collections import deque

from ..crypto.prf import prf_for
from ..wire.enums import NotifyType, PrfId
from ..wire.message import FLAG_INITIATOR, FLAG_RESPONSE, Message, encode_message
from ..wire.payloads import NotifyPayload

TOKEN_SIZE = 32
_PRF = prf_for(PrfId.HMAC_SHA2_256)


def qcd_token(secret: bytes, spi_i: bytes, spi_r: bytes) -> bytes:
    """RFC 6290 §4.1: a keyed hash of the two SPIs."""
    return _PRF(secret, spi_i + spi_r)[:TOKEN_SIZE]


def token_matches(expected: bytes | None, received: bytes) -> bool:
    return expected is not None and hmac.compare_digest(expected, received)


def crash_reported(msg: Message, expected: bytes | None) -> bool:
    """An unprotected message reports INVALID_IKE_SPI with the token we expect (§5)."""
    notifies = [p for p in msg.payloads if isinstance(p, NotifyPayload)]
    token = next((n.data for n in notifies if n.type == NotifyType.QUICK_CRASH_DETECTION), b"")
    reported = any(n.type == NotifyType.INVALID_IKE_SPI for n in notifies)
    return reported and token_matches(expected, token)


def crash_answer(secret: bytes, msg: Message) -> bytes:
    """The unprotected answer to a request for an IKE SA we lost: INVALID_IKE_SPI with our
    token (§4.1), so the peer can believe it without waiting for its DPD budget."""
    token = qcd_token(secret, msg.spi_i, msg.spi_r)
    flags = FLAG_RESPONSE | (0 if msg.is_initiator else FLAG_INITIATOR)
    notifies = (
        NotifyPayload(NotifyType.INVALID_IKE_SPI),
        NotifyPayload(NotifyType.QUICK_CRASH_DETECTION, token),
    )
    return encode_message(
        Message(msg.spi_i, msg.spi_r, msg.exchange, flags, msg.message_id, notifies)
    )


class ReportLimits:
    """How often we tell peers their state is gone: INVALID_IKE_SPI crash answers at most
    ``CRASH_ANSWERS_PER_SECOND``, an INVALID_SPI report per SPI at most every
    ``SPI_REPORT_INTERVAL`` seconds (unauthenticated input must not make us a reflector)."""

    CRASH_ANSWERS_PER_SECOND = 10
    SPI_REPORT_INTERVAL = 5.0
    SPIS_REMEMBERED = 1024

    def __init__(self) -> None:
        self._crash_answers: deque[float] = deque(maxlen=self.CRASH_ANSWERS_PER_SECOND)
        self._spi_reports: dict[bytes, float] = {}

    def crash_answer_allowed(self, now: float) -> bool:
        answers = self._crash_answers
        if len(answers) == answers.maxlen and now - answers[0] < 1.0:
            return False
        answers.append(now)
        return True

    def spi_report_allowed(self, spi: bytes, now: float) -> bool:
        reports = self._spi_reports
        if now - reports.get(spi, -self.SPI_REPORT_INTERVAL) < self.SPI_REPORT_INTERVAL:
            return False
        if len(reports) >= self.SPIS_REMEMBERED:
            reports.clear()
        reports[spi] = now
        return True
