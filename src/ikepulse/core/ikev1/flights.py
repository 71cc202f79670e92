"""Our last message of each IKEv1 exchange and its retransmission (RFC 2408 §5, RFC 2409).

IKEv1 has no request/response pairs: whoever sent the latest message of an exchange and
waits for the next one resends it on a timer. The sender of an exchange's final message
(MM6, QM3, an Informational) keeps it and sends it again only when the peer repeats the
message it answered, which says ours was lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..connection import RetransmitPolicy
from ..randomness import Rng, fraction

KEPT = 60.0
"""Seconds a finished exchange's last message is kept for a peer that repeats its own."""


def digest(raw: bytes) -> bytes:
    """What identifies a received message when the peer repeats it."""
    return hashlib.sha256(raw).digest()


@dataclass(slots=True)
class Flight:
    """One exchange's last message of ours."""

    packets: tuple[bytes, ...]
    answers: bytes
    """Digest of the peer's message this one answers (b"" for an exchange's first)."""
    sent_at: float
    deadline: float | None
    """Next retransmission; None: sent again only when ``answers`` comes again."""
    retransmits: int = 0
    waits: list[float] | None = field(default=None)


class Flights:
    """Per message ID, the flight in the air; ``due`` says what to resend or give up."""

    def __init__(self, policy: RetransmitPolicy, rng: Rng) -> None:
        self.policy = policy
        self.rng = rng
        self._flights: dict[int, Flight] = {}

    def wait(self, attempt: int) -> float:
        policy = self.policy
        wait = policy.timeout * policy.base**attempt
        if policy.jitter:
            wait *= 1 - policy.jitter * fraction(self.rng)
        return wait

    def sent(
        self,
        message_id: int,
        packets: tuple[bytes, ...],
        now: float,
        *,
        answers: bytes = b"",
        final: bool = False,
    ) -> None:
        """We sent ``packets``; unless ``final``, resend them until the peer goes on."""
        deadline = None if final else now + self.wait(0)
        self._flights[message_id] = Flight(packets, answers, now, deadline)

    def repeat_of(self, message_id: int, raw: bytes) -> tuple[bytes, ...] | None:
        """Our answer to ``raw`` if the peer sent it before (it lost our answer)."""
        flight = self._flights.get(message_id)
        if flight is not None and flight.answers and flight.answers == digest(raw):
            return flight.packets
        return None

    def current(self, message_id: int) -> Flight | None:
        """Our latest message of the exchange, if we keep one."""
        return self._flights.get(message_id)

    def landed(self, message_id: int) -> Flight | None:
        """The peer went on: stop resending (the flight stays for repeats of its answer)."""
        flight = self._flights.get(message_id)
        if flight is not None:
            flight.deadline = None
        return flight

    def end(self, message_id: int) -> None:
        self._flights.pop(message_id, None)

    # what the SA's owners ask of its ``tasks`` (as of an IKEv2 task manager)

    def in_flight(self, *purposes) -> bool:
        return any(f.deadline is not None for f in self._flights.values())

    has_queued = False

    def busy(self) -> bool:
        return self.in_flight()

    def cancel_queued(self) -> None:
        """IKEv1 queues nothing: each exchange has its own message ID."""

    def abort(self) -> None:
        self._flights.clear()

    def answer_retransmit(self, raw: bytes, msg, now: float, path=None) -> bool:
        return False

    def deadline(self) -> float | None:
        return min((f.deadline for f in self._flights.values() if f.deadline), default=None)

    def due(self, now: float) -> tuple[list[tuple[bytes, ...]], list[int]]:
        """(packets to resend now, message IDs whose tries ran out)."""
        resend, exhausted = [], []
        for message_id, flight in list(self._flights.items()):
            if flight.deadline is None and now - flight.sent_at > KEPT:
                del self._flights[message_id]
                continue
            if flight.deadline is None or now < flight.deadline:
                continue
            if flight.retransmits >= self.policy.tries:
                flight.deadline = None
                exhausted.append(message_id)
                continue
            flight.retransmits += 1
            flight.deadline = now + self.wait(flight.retransmits)
            resend.append(flight.packets)
        return resend, exhausted
