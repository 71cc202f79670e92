"""Reassembly of one inbound fragmented message at a time, with hard limits
(RFC 7383 §2.6).

Pure bookkeeping over already-authenticated chunks: the caller runs ``check`` before it
spends a decryption on a fragment, decrypts and verifies it, then ``add``s the chunk.
Every refusal raises ``FragmentDropped`` with a reason, counted as
``fragments_dropped_<reason>``; fragments it throws away from its buffer are reported to
``count`` under the same scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..wire.enums import ExchangeType, PayloadType
from ..wire.message import Message
from ..wire.payloads import EncryptedFragmentPayload
from .errors import Dropped

MAX_FRAGMENTS = 255
"""Most fragments one message may be cut into (strongSwan's limit too)."""
MAX_BYTES = 64 * 1024
"""Most octets of decrypted payloads one reassembled message may hold."""
MAX_SECONDS = 30.0
"""An incomplete message older than this is discarded when the next fragment comes."""


class FragmentDropped(Dropped):
    """A fragment not kept; counted as ``fragments_dropped_<counter>``."""

    prefix = "fragments_dropped_"


def late_fragment(msg: Message) -> None:
    """Raise FragmentDropped for a fragment of a message no longer collected: a request
    already answered (only its first fragment asks for the answer again, §2.6.1) or a
    response to a request no longer in flight."""
    if isinstance(msg.encrypted, EncryptedFragmentPayload):
        raise FragmentDropped("late", f"fragment of {msg.exchange.name} {msg.message_id}")


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A complete message: the first fragment as received and the joined inner chain."""

    raw: bytes
    """The first fragment's datagram: a retransmission of it asks for our answer again
    (§2.6.1)."""
    message: Message
    """The first fragment, decoded: the header and any unprotected payloads."""
    first_inner: PayloadType
    plaintext: bytes


class Reassembly:
    """The fragments of one message (one message ID and exchange) being collected."""

    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count
        self._key: tuple[int, ExchangeType] | None = None
        self._total = 0
        self._chunks: dict[int, bytes] = {}
        self._size = 0
        self._started = 0.0
        self._first: tuple[bytes, Message] | None = None

    @property
    def held(self) -> int:
        """Fragments kept for the message being collected."""
        return len(self._chunks)

    def check(self, msg: Message, number: int, total: int, now: float) -> None:
        """Refuse, before any decryption, a fragment that could never be kept (an expired
        collection is gone first: a retransmission starts it over whole)."""
        if self._key is not None and now - self._started > MAX_SECONDS:
            self._discard("timeout")
        if not 1 <= number <= total:
            raise FragmentDropped("invalid_number", f"fragment {number} of {total}")
        if total > MAX_FRAGMENTS:
            raise FragmentDropped("too_many", f"{total} fragments, at most {MAX_FRAGMENTS}")
        if (msg.message_id, msg.exchange) != self._key:
            return
        if total < self._total:  # §2.6: a smaller total than we collect is dropped
            raise FragmentDropped("total_changed", f"total {total}, collecting {self._total}")
        if total == self._total and number in self._chunks:
            raise FragmentDropped("duplicate", f"fragment {number} of {total} again")

    def add(
        self, raw: bytes, msg: Message, number: int, total: int, chunk: bytes, now: float
    ) -> Reassembled | None:
        """Keep the authenticated ``chunk``; the whole message once every fragment is in.
        A new message ID (or exchange), a larger total (§2.6: the sender re-fragmented)
        or an expired collection starts over."""
        self.check(msg, number, total, now)
        key = (msg.message_id, msg.exchange)
        if self._key is not None and (key != self._key or total > self._total):
            self._discard("superseded")
        if self._key is None:
            self._key, self._total, self._started = key, total, now
        if self._size + len(chunk) > MAX_BYTES:
            self._discard("too_large")
            raise FragmentDropped("too_large", f"message beyond {MAX_BYTES} octets")
        self._chunks[number] = chunk
        self._size += len(chunk)
        if number == 1:
            self._first = (raw, msg)
        if len(self._chunks) < self._total:
            return None
        first_raw, first = self._first
        skf = first.encrypted
        plaintext = b"".join(self._chunks[n] for n in range(1, self._total + 1))
        self._reset()
        return Reassembled(first_raw, first, skf.first_inner, plaintext)

    def _discard(self, reason: str) -> None:
        for _ in self._chunks:
            self._count(FragmentDropped.prefix + reason)
        self._reset()

    def _reset(self) -> None:
        self._key, self._total, self._chunks, self._size, self._first = None, 0, {}, 0, None
