"""Message IDs, the window of one, retransmission and the response cache (RFC 7296 §2.1-§2.3).

The task manager is the only place that knows message IDs: it turns queued exchanges into
requests, matches responses to them and answers retransmitted requests from the cache.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire.enums import ExchangeType, NotifyType
from ..wire.payloads import NotifyPayload, Payload
from ..wire.rules import CriticalPayloadUnknown, RuleViolation, check_rules
from .errors import Dropped, IkeError
from .randomness import fraction
from .reassembly import late_fragment
from .state import FINAL, IkeState
from .task import Inbound, Purpose, Request, Status, Task

if TYPE_CHECKING:
    from .hosts import ExchangeHost

_SETUP = (ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH)
_BEING_SET_UP = (IkeState.CREATED, IkeState.CONNECTING)
_INFORMATIONAL = ExchangeType.INFORMATIONAL
log = logging.getLogger("ikepulse.ike")


def _flood_kind(exchange: ExchangeType) -> dict:
    """Log ``extra`` marking lines about IKE_SA_INIT, which anyone can send at any rate: the
    runtime rate-limits lines so marked (``rate_limit`` is ``runtime.logs.RATE_LIMIT``)."""
    return {"rate_limit": exchange.name} if exchange == ExchangeType.IKE_SA_INIT else {}


def _liveness_check(exchange: ExchangeType, payloads) -> bool:
    """An empty INFORMATIONAL: a liveness check or its answer (RFC 7296 §2.4)."""
    return exchange == _INFORMATIONAL and not payloads


_NATD = (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP)


def _routine_check(exchange: ExchangeType, payloads) -> bool:
    """A liveness check or its answer: empty (RFC 7296 §2.4), or with nothing but the NAT-D
    notifies MOBIKE adds behind a NAT to see whether the mapping changed (RFC 4555 §3.8)."""
    if exchange != _INFORMATIONAL:
        return False
    for p in payloads:
        if not isinstance(p, NotifyPayload) or p.type not in _NATD:
            return False
    return True


def _log_exchange(sa, verb: str, exchange: ExchangeType, kind: str, mid: int, payloads):
    """One line per message sent or received, at INFO; liveness checks, which a gateway
    sends and answers for every idle tunnel each dpd_delay, at DEBUG (at INFO, four lines
    per check were a fifth of an idle gateway's CPU; with NAT-D, the cost of the check
    itself). No summary is built for a level that is off, nor the SA's label."""
    level = logging.DEBUG if _routine_check(exchange, payloads) else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level, "%s: %s %s %s %d %s", sa.label, verb, exchange.name, kind, mid,
            _summary(payloads), extra=_flood_kind(exchange),
        )  # fmt: skip


def _summary(payloads) -> str:
    """Payload list in strongSwan's log style: ``[ SA KE No N(NATD_S_IP) ]``."""
    names = []
    for p in payloads:
        if isinstance(p, NotifyPayload):
            names.append(f"N({p.type.name})")
        else:
            names.append(p.TYPE.name)
    return "[ " + " ".join(names) + " ]"


@dataclass(slots=True)
class _Active:
    """Our request in flight."""

    purpose: Purpose
    exchange: ExchangeType
    tasks: list[Task]
    message_id: int
    packets: tuple[bytes, ...]
    """The request's datagrams (its SKF fragments, if fragmented): all resent (RFC 7383 §2.6)."""
    sent_at: float
    waits: list[float] | None = None
    """Explicit retransmission waits (liveness probes); None uses the retransmit policy."""
    retransmits: int = 0
    deadline: float = 0.0
    last_sent: float = 0.0

    @property
    def tries(self) -> int | None:
        return None if self.waits is None else len(self.waits) - 1


@dataclass(slots=True)
class _Held:
    """Responder: an exchange of several rounds whose leading task wants more (§2.16)."""

    exchange: ExchangeType
    tasks: list[Task]
    deadline: float
    error: IkeError


class TaskManager:
    def __init__(self, sa: ExchangeHost) -> None:
        self.sa = sa
        self._queue: deque[tuple[Request, list[float] | None]] = deque()
        self._active: _Active | None = None
        self._held: _Held | None = None
        self.next_request_id = 0
        self.expected_request_id = 0
        self._last_request: bytes | None = None
        """The last request answered (its first fragment, if fragmented, RFC 7383 §2.6.1)."""
        self._last_response: tuple[bytes, ...] | None = None
        self._last_response_sent = 0.0
        self._last_path = None

    # --- initiating ------------------------------------------------------------------------

    def queue_exchange(
        self, request: Request, now: float, waits: list[float] | None = None
    ) -> None:
        """Send ``request`` when the window of one is free (§2.3); ``waits`` are explicit
        retransmission waits (liveness checks), else the retransmit policy applies."""
        self._queue.append((request, waits))
        self.initiate(now)

    def in_flight(self, *purposes: Purpose) -> bool:
        """Our request in flight is for one of ``purposes`` (any, without them)."""
        return self._active is not None and (not purposes or self._active.purpose in purposes)

    @property
    def has_queued(self) -> bool:
        return bool(self._queue)

    def busy(self) -> bool:
        """A request of ours is queued, or in flight and not a liveness check (work queued
        now waits only for the check's answer, §2.4)."""
        active = self._active
        return bool(self._queue) or (
            active is not None and active.purpose is not Purpose.LIVENESS_CHECK
        )

    def cancel_queued(self) -> None:
        """Drop the requests not sent yet; the one in flight still completes."""
        self._queue.clear()

    def abort(self) -> None:
        """Forget every request, the one in flight included (the SA is gone or retired)."""
        self._queue.clear()
        self._active = None
        self._held = None

    def initiate(self, now: float) -> None:
        if self._active is not None or not self._queue or self.sa.state in FINAL:
            return
        request, waits = self._queue.popleft()
        self._send_request(request.purpose, request.exchange, request.tasks, now, waits)

    def _send_request(
        self,
        purpose: Purpose,
        exchange: ExchangeType,
        tasks: list[Task],
        now: float,
        waits=None,
        builders: list[Task] | None = None,
    ) -> None:
        payloads: list[Payload] = []
        for task in tasks if builders is None else builders:
            task.build(payloads)
        mid = self.next_request_id
        _log_exchange(self.sa, "sending", exchange, "request", mid, payloads)
        packets = self.sa.datagrams(exchange, mid, response=False, payloads=payloads)
        self._active = _Active(purpose, exchange, tasks, mid, packets, now, waits, last_sent=now)
        self._active.deadline = now + self._wait(self._active, 0)
        self.sa.send(packets, now)

    def _wait(self, active: _Active, attempt: int) -> float:
        if active.waits is not None:
            return active.waits[attempt]
        policy = self.sa.retransmit
        wait = policy.timeout * policy.base**attempt
        if policy.jitter:
            wait *= 1 - policy.jitter * fraction(self.sa.rng)
        return wait

    @property
    def deadline(self) -> float | None:
        active, held = self._active, self._held
        if held is None:
            return None if active is None else active.deadline
        return held.deadline if active is None else min(active.deadline, held.deadline)

    def on_timer(self, now: float) -> None:
        held = self._held
        if held is not None and now >= held.deadline:
            self._held = None
            self.sa.fail(held.error.reason, held.error.notify, now)
            return
        active = self._active
        if active is None or now < active.deadline:
            return
        tries = self.sa.retransmit.tries if active.tries is None else active.tries
        if active.retransmits >= tries:
            waited = now - active.sent_at
            self._active = None
            reason = (
                f"no response to {active.exchange.name} after {active.retransmits} "
                f"retransmits ({waited:.1f}s)"
            )
            stalled = active.tasks[0].round_timeout() if active.tasks[0].leads else None
            if stalled is not None:  # the peer went silent between rounds (EAP)
                self.sa.fail(f"{stalled[1].reason}: {reason}", stalled[1].notify, now)
                return
            self.sa.no_response(reason, now)
            return
        active.retransmits += 1
        active.last_sent = now
        active.deadline = now + self._wait(active, active.retransmits)
        self.sa.count("retransmits_sent")
        self.sa.send(active.packets, now)

    # --- receiving -------------------------------------------------------------------------

    def receive(self, raw: bytes, msg, src, dst, now: float) -> None:
        """Entry point for a decoded message addressed to this SA (already SPI-matched)."""
        if msg.is_response and msg.encrypted is None and msg.exchange != ExchangeType.IKE_SA_INIT:
            self.sa.crash_report(msg, now)
            return
        if msg.is_response:
            active = self._active
            if active is None or (msg.message_id, msg.exchange) != (
                active.message_id,
                active.exchange,
            ):
                late_fragment(msg)
                raise Dropped(
                    "unexpected_response", f"{msg.exchange.name} response {msg.message_id}"
                )
        elif self.answer_retransmit(raw, msg, now, (dst, src)):
            return
        elif msg.message_id != self.expected_request_id:
            if msg.message_id + 1 == self.expected_request_id:
                late_fragment(msg)
            raise Dropped(
                "invalid_message_id",
                f"request {msg.message_id}, expected {self.expected_request_id}",
            )
        opened = self.sa.open(raw, msg, now)
        if opened is None:
            return  # a fragment, kept until its message is complete
        raw, msg, inner = opened
        try:
            check_rules(msg, inner)
        except RuleViolation as exc:
            if msg.is_response:
                raise Dropped("malformed", str(exc)) from exc
            notify = (
                NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
                if isinstance(exc, CriticalPayloadUnknown)
                else NotifyType.INVALID_SYNTAX
            )
            data = bytes([exc.payload_type]) if isinstance(exc, CriticalPayloadUnknown) else b""
            self._respond_error(raw, msg, notify, data, str(exc), now, (dst, src))
            return
        self.sa.authenticated_inbound(src, dst, now)
        sk = msg.encrypted
        if sk is None:
            outer = tuple(msg.payloads)
        elif len(msg.payloads) == 1:
            outer = ()
        else:
            outer = tuple(p for p in msg.payloads if p is not sk)
        inbound = Inbound(msg, outer + tuple(inner), raw, src, dst, now)
        kind = "response" if msg.is_response else "request"
        _log_exchange(self.sa, "received", msg.exchange, kind, msg.message_id, inbound.payloads)
        if msg.is_response:
            self._on_response(inbound, now)
        else:
            self._on_request(raw, inbound, now)

    def answer_retransmit(self, raw: bytes, msg, now: float, path=None) -> bool:
        """A retransmitted request is answered from the cache (§2.1), back along ``path``
        (where it arrived, where it came from), by default the original request's."""
        if msg.is_response or msg.message_id + 1 != self.expected_request_id:
            return False
        if raw != self._last_request:
            return False
        self.sa.count("retransmits_answered")
        self.sa.liveness.retransmission_seen(now)
        if self._last_response is not None:
            self.sa.send(self._last_response, now, path or self._last_path)
            self._last_response_sent = now
        return True

    def _on_response(self, inbound: Inbound, now: float) -> None:
        active = self._active
        assert active is not None
        try:
            pending, held = [], []
            for i, task in enumerate(active.tasks):
                if task.process(inbound) is Status.NEED_MORE:
                    pending.append(task)
                    if task.leads:  # the others wait for its last round
                        held = active.tasks[i + 1 :]
                        break
        except IkeError as exc:
            self._active = None
            self.sa.fail(exc.reason, exc.notify, now)
            return
        self.sa.liveness.observe_rtt(now - active.sent_at, active.retransmits)
        self.sa.liveness.proven(
            now, active.last_sent, check_answered=active.purpose is Purpose.LIVENESS_CHECK
        )
        self._active = None
        if pending:
            if active.exchange != ExchangeType.IKE_SA_INIT:
                self.next_request_id += 1
            tasks = pending + held
            self._send_request(active.purpose, active.exchange, tasks, now, builders=pending)
            return
        self.next_request_id += 1
        for task in active.tasks:
            task.finish(now)
        self.sa.exchange_completed(now)
        self.initiate(now)

    def _on_request(self, raw: bytes, inbound: Inbound, now: float) -> None:
        if self._last_response is not None:  # the peer has our previous answer
            self.sa.liveness.proven(now, self._last_response_sent)
            if (
                inbound.message.exchange == ExchangeType.IKE_AUTH
                and inbound.message.message_id == 1
            ):
                # A responder's first round trip: our IKE_SA_INIT answer to this request.
                self.sa.liveness.observe_rtt(now - self._last_response_sent, 0)
        held = self._held
        if held is not None and held.exchange == inbound.message.exchange:
            self._held = None
        else:
            held = None
        if held is None and _liveness_check(inbound.message.exchange, inbound.payloads):
            # An empty INFORMATIONAL: a liveness check (§2.4), answered empty. Its responder
            # tasks (LivenessCheck, Mobike) find nothing to do in it: none are built.
            self._respond(raw, inbound.message, [], now, path=(inbound.dst, inbound.src))
            self.initiate(now)
            return
        more: Task | None = None
        try:
            if held is not None:
                tasks = held.tasks  # a later round: only the leading task takes part
                if held.tasks[0].process(inbound) is Status.NEED_MORE:
                    more = held.tasks[0]
            else:
                tasks = self.sa.responder_tasks(inbound)
                for task in tasks:
                    if task.process(inbound) is Status.NEED_MORE and task.leads:
                        more = more or task
        except IkeError as exc:
            path = (inbound.dst, inbound.src)
            self._respond_error(raw, inbound.message, exc.notify, exc.data, exc.reason, now, path)
            return
        payloads: list[Payload] = []
        for task in [more] if more is not None else tasks:
            task.build(payloads)
        self._respond(raw, inbound.message, payloads, now, path=(inbound.dst, inbound.src))
        if more is not None:
            wait, error = more.round_timeout() or (self.sa.retransmit.timeout, IkeError("stalled"))
            self._held = _Held(inbound.message.exchange, tasks, now + wait, error)
            return
        for task in tasks:
            task.finish(now)
        self.initiate(now)

    def _respond(
        self,
        raw: bytes,
        msg,
        payloads: list[Payload],
        now: float,
        zero_spi: bool = False,
        path=None,
    ) -> None:
        """Answer along ``path``: from where the request arrived to where it came from
        (RFC 7296 §2.11), whatever addresses the IKE SA holds (RFC 4555 §3.5)."""
        _log_exchange(self.sa, "sending", msg.exchange, "response", msg.message_id, payloads)
        packets = self.sa.datagrams(
            msg.exchange, msg.message_id, response=True, payloads=payloads, zero_spi=zero_spi
        )
        self._last_request, self._last_response, self._last_path = raw, packets, path
        self._last_response_sent = now
        self.expected_request_id = msg.message_id + 1
        self.sa.send(packets, now, path)

    def _respond_error(
        self, raw: bytes, msg, notify: NotifyType, data: bytes, reason: str, now: float, path
    ) -> None:
        self._respond(
            raw,
            msg,
            [NotifyPayload(notify, data)],
            now,
            zero_spi=msg.exchange == ExchangeType.IKE_SA_INIT,
            path=path,
        )
        if msg.exchange in _SETUP and self.sa.state in _BEING_SET_UP:
            self.sa.fail(reason, notify, now)  # §2.21.1, §2.21.2
