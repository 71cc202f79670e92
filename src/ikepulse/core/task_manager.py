"""Message IDs, the window of one, retransmission and the response cache (RFC 7296 §2.1-§2.3).

The task manager is the only place that knows message IDs: it turns queued exchanges into
requests, matches responses to them, answers retransmitted requests from the cache and
classifies new requests into responder tasks.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire.enums import ExchangeType, NotifyType, ProtocolId
from ..wire.payloads import DeletePayload, NotifyPayload, Payload, SaPayload
from ..wire.rules import CriticalPayloadUnknown, RuleViolation, check_rules
from .errors import Dropped, IkeError, NoAdditionalSas
from .state import IkeState
from .task import Inbound, Status, Task

if TYPE_CHECKING:
    from .ike_sa import IkeSa

_SETUP = (ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH)
log = logging.getLogger("ikepulse.ike")


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

    exchange: ExchangeType
    tasks: list[Task]
    message_id: int
    packet: bytes
    sent_at: float
    waits: list[float] | None = None
    """Explicit retransmission waits (liveness probes); None uses the retransmit policy."""
    retransmits: int = 0
    deadline: float = 0.0

    @property
    def tries(self) -> int | None:
        return None if self.waits is None else len(self.waits) - 1


class TaskManager:
    def __init__(self, sa: IkeSa) -> None:
        self.sa = sa
        self.queue: deque[tuple[ExchangeType, list[Task], list[float] | None]] = deque()
        self.active: _Active | None = None
        self.next_request_id = 0
        self.expected_request_id = 0
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None

    # --- initiating ------------------------------------------------------------------------

    def queue_exchange(
        self,
        exchange: ExchangeType,
        tasks: list[Task],
        now: float,
        waits: list[float] | None = None,
    ) -> None:
        self.queue.append((exchange, tasks, waits))
        self.initiate(now)

    def in_flight(self, *kinds: type) -> bool:
        """Our request in flight carries a task of one of these classes."""
        return self.active is not None and any(isinstance(t, kinds) for t in self.active.tasks)

    @property
    def busy(self) -> bool:
        return self.active is not None or bool(self.queue)

    def initiate(self, now: float) -> None:
        if (
            self.active is not None
            or not self.queue
            or self.sa.state
            in (
                IkeState.DELETED,
                IkeState.FAILED,
            )
        ):
            return
        exchange, tasks, waits = self.queue.popleft()
        self._send_request(exchange, tasks, now, waits)

    def _send_request(
        self, exchange: ExchangeType, tasks: list[Task], now: float, waits=None
    ) -> None:
        payloads: list[Payload] = []
        for task in tasks:
            task.build(payloads)
        mid = self.next_request_id
        log.info(
            "%s: sending %s request %d %s", self.sa.label, exchange.name, mid, _summary(payloads)
        )
        packet = self.sa.encode(exchange, mid, response=False, payloads=payloads)
        self.active = _Active(exchange, tasks, mid, packet, now, waits)
        self.active.deadline = now + self._wait(self.active, 0)
        self.sa.send(packet)

    def _wait(self, active: _Active, attempt: int) -> float:
        if active.waits is not None:
            return active.waits[attempt]
        policy = self.sa.retransmit
        wait = policy.timeout * policy.base**attempt
        if policy.jitter:
            fraction = int.from_bytes(self.sa.rng.randbytes(2), "big") / 0xFFFF
            wait *= 1 - policy.jitter * fraction
        return wait

    @property
    def deadline(self) -> float | None:
        return None if self.active is None else self.active.deadline

    def on_timer(self, now: float) -> None:
        active = self.active
        if active is None or now < active.deadline:
            return
        tries = self.sa.retransmit.tries if active.tries is None else active.tries
        if active.retransmits >= tries:
            waited = now - active.sent_at
            self.active = None
            self.sa.no_response(
                f"no response to {active.exchange.name} after {active.retransmits} "
                f"retransmits ({waited:.1f}s)",
                now,
            )
            return
        active.retransmits += 1
        active.deadline = now + self._wait(active, active.retransmits)
        self.sa.manager.counters["retransmits_sent"] += 1
        self.sa.send(active.packet)

    # --- receiving -------------------------------------------------------------------------

    def receive(self, raw: bytes, msg, src, dst, now: float) -> None:
        """Entry point for a decoded message addressed to this SA (already SPI-matched)."""
        if msg.is_response and msg.encrypted is None and msg.exchange != ExchangeType.IKE_SA_INIT:
            self.sa.crash_report(msg, now)
            return
        if msg.is_response:
            if self.active is None or msg.message_id != self.active.message_id:
                raise Dropped("unexpected_response", f"response {msg.message_id} not awaited")
        elif self.answer_retransmit(raw, msg):
            return
        elif msg.message_id != self.expected_request_id:
            raise Dropped(
                "invalid_message_id",
                f"request {msg.message_id}, expected {self.expected_request_id}",
            )
        inner = self.sa.unprotect(raw, msg)
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
            self._respond_error(raw, msg, notify, data, str(exc), now)
            return
        self.sa.authenticated_inbound(src, dst, now)
        outer = tuple(p for p in msg.payloads if p is not msg.encrypted)
        inbound = Inbound(msg, outer + tuple(inner), raw)
        log.info(
            "%s: received %s %s %d %s",
            self.sa.label,
            msg.exchange.name,
            "response" if msg.is_response else "request",
            msg.message_id,
            _summary(inbound.payloads),
        )
        if msg.is_response:
            self._on_response(inbound, now)
        else:
            self._on_request(raw, inbound, now)

    def answer_retransmit(self, raw: bytes, msg) -> bool:
        """A retransmitted request is answered from the cache (§2.1)."""
        if msg.is_response or msg.message_id + 1 != self.expected_request_id:
            return False
        if raw != self._last_request:
            return False
        self.sa.manager.counters["retransmits_answered"] += 1
        if self._last_response is not None:
            self.sa.send(self._last_response)
        return True

    def _on_response(self, inbound: Inbound, now: float) -> None:
        active = self.active
        assert active is not None
        try:
            pending = [t for t in active.tasks if t.process(inbound) is Status.NEED_MORE]
        except IkeError as exc:
            self.active = None
            self.sa.fail(exc.reason, exc.notify, now)
            return
        self.sa.observe_rtt(now - active.sent_at, active.retransmits)
        self.active = None
        if pending:
            if active.exchange != ExchangeType.IKE_SA_INIT:
                self.next_request_id += 1
            self._send_request(active.exchange, pending, now)
            return
        self.next_request_id += 1
        for task in active.tasks:
            task.finish(now)
        self.sa.exchange_completed(now)
        self.initiate(now)

    def _on_request(self, raw: bytes, inbound: Inbound, now: float) -> None:
        try:
            tasks = self.sa.responder_tasks(inbound)
            for task in tasks:
                task.process(inbound)
        except IkeError as exc:
            self._respond_error(raw, inbound.message, exc.notify, exc.data, exc.reason, now)
            return
        payloads: list[Payload] = []
        for task in tasks:
            task.build(payloads)
        self._respond(raw, inbound.message, payloads)
        for task in tasks:
            task.finish(now)
        self.initiate(now)

    def _respond(self, raw: bytes, msg, payloads: list[Payload], zero_spi: bool = False) -> None:
        log.info(
            "%s: sending %s response %d %s",
            self.sa.label,
            msg.exchange.name,
            msg.message_id,
            _summary(payloads),
        )
        packet = self.sa.encode(
            msg.exchange, msg.message_id, response=True, payloads=payloads, zero_spi=zero_spi
        )
        self._last_request, self._last_response = raw, packet
        self.expected_request_id = msg.message_id + 1
        self.sa.send(packet)

    def _respond_error(
        self, raw: bytes, msg, notify: NotifyType, data: bytes, reason: str, now: float
    ) -> None:
        setup = msg.exchange in _SETUP
        self._respond(
            raw,
            msg,
            [NotifyPayload(notify, data)],
            zero_spi=msg.exchange == ExchangeType.IKE_SA_INIT,
        )
        if setup:
            self.sa.fail(reason, notify, now)


def classify_request(sa: IkeSa, inbound: Inbound) -> list[Task]:
    """Which responder tasks handle a new request (the one place that decides it)."""
    from .tasks.create_child_sa import CreateChildSa
    from .tasks.ike_auth import IkeAuth
    from .tasks.ike_auth_child import IkeAuthChild
    from .tasks.ike_init import IkeInit
    from .tasks.ike_rekey import IkeRekey
    from .tasks.informational import ChildDelete, IkeDelete, LivenessCheck
    from .tasks.natd import NatDetection

    exchange = inbound.message.exchange
    if exchange == ExchangeType.IKE_SA_INIT:
        return [IkeInit(sa, False), NatDetection(sa, False)]
    if exchange == ExchangeType.IKE_AUTH:
        tasks: list[Task] = [IkeAuth(sa, False)]
        if inbound.first(SaPayload) is not None:
            tasks.append(IkeAuthChild(sa, False))
        return tasks
    if exchange == ExchangeType.INFORMATIONAL:
        deletes = inbound.all(DeletePayload)
        if any(d.protocol == 1 for d in deletes):
            return [IkeDelete(sa, False)]
        if deletes:
            return [ChildDelete(sa, False)]
        return [LivenessCheck(sa, False)]
    if exchange == ExchangeType.CREATE_CHILD_SA:
        proposals = inbound.first(SaPayload).proposals
        if any(p.protocol == ProtocolId.IKE for p in proposals):
            return [IkeRekey(sa, False)]
        return [CreateChildSa(sa, False)]
    raise NoAdditionalSas(f"{exchange.name} is not supported")
