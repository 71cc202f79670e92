"""The task interface: an exchange is a set of small tasks (DESIGN.md §3.3).

An initiator task ``build``s its part of a request and ``process``es the response; a
responder task ``process``es the request and ``build``s its part of the response.
Tasks see their IKE SA only through ``hosts.TaskHost``.

A task fails in one of two ways. Raising an ``IkeError`` fails the whole exchange: the task
manager answers with its notify, or fails the SA. A task whose failure concerns only its own
part (a CHILD SA, a rekey) works ``with self.contained():`` instead: the error is kept in
``error``, answered by ``build_error`` and acted on in ``finish``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ..wire.enums import ExchangeType, NotifyType
from ..wire.message import Message
from ..wire.payloads import NotifyPayload, Payload
from .errors import IkeError, PeerReportedError
from .state import IdentityEnum

if TYPE_CHECKING:
    from .hosts import TaskHost


class Status(Enum):
    DONE = "done"
    NEED_MORE = "need-more"
    FAILED = "failed"


class Purpose(IdentityEnum):
    """What an exchange is for; ``exchanges.EXCHANGES`` says which tasks make it."""

    IKE_SA_INIT = "ike-sa-init"
    IKE_AUTH = "ike-auth"
    CREATE_CHILD = "create-child"
    REKEY_CHILD = "rekey-child"
    REKEY_IKE = "rekey-ike"
    DELETE_IKE = "delete-ike"
    DELETE_CHILD = "delete-child"
    LIVENESS_CHECK = "liveness-check"
    INVALID_SPI_REPORT = "invalid-spi-report"
    MOBIKE_UPDATE = "mobike-update"
    MOBIKE_ADDRESSES = "mobike-addresses"


@dataclass(frozen=True, slots=True)
class Request:
    """One exchange of ours, ready to be queued: what it is for and the tasks that make it."""

    purpose: Purpose
    exchange: ExchangeType
    tasks: list[Task]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded, authenticated (where applicable) and rule-checked message."""

    message: Message
    payloads: tuple[Payload, ...]
    """Outer payloads in the clear plus the decrypted inner ones."""
    raw: bytes
    src: tuple[str, int] | None = None
    """Where the message came from (the peer's address and port as we see them)."""
    dst: tuple[str, int] | None = None
    """Where it arrived (our address and port)."""
    now: float = 0.0
    """When it arrived, on the core's clock."""

    def all(self, cls: type) -> list:
        return [p for p in self.payloads if isinstance(p, cls)]

    def first(self, cls: type):
        found = self.all(cls)
        return found[0] if found else None

    def notify(self, ntype: NotifyType) -> NotifyPayload | None:
        for p in self.payloads:
            if isinstance(p, NotifyPayload) and p.type == ntype:
                return p
        return None

    def error_notify(self) -> NotifyPayload | None:
        for p in self.all(NotifyPayload):
            if p.type.is_error:
                return p
        return None

    def raise_error_notify(self, context: str) -> None:
        """Turn an error notify in a response into PeerReportedError."""
        error = self.error_notify()
        if error is not None:
            raise PeerReportedError(error.type, context)


class Task:
    """Base class; ``initiator`` is the role in *this exchange*, not in the IKE SA."""

    leads = False
    """A task that may take several rounds of its exchange (EAP in IKE_AUTH, §2.16). While
    it answers NEED_MORE the exchange's other tasks wait: as initiator they built into the
    first request and process only the last response; as responder they processed the
    first request and build only into the last response."""

    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        self.sa = sa
        self.initiator = initiator
        self.error: IkeError | None = None
        """Why this task's own part failed (see ``contained``)."""

    @contextmanager
    def contained(self) -> Iterator[None]:
        """An IkeError inside fails only this task: it is kept in ``error``."""
        try:
            yield
        except IkeError as exc:
            self.error = exc

    def build_error(self, out: list[Payload]) -> bool:
        """A responder task that failed answers with its error notify alone (§2.21.2)."""
        if self.error is None:
            return False
        out.append(NotifyPayload(self.error.notify, self.error.data))
        return True

    def build(self, out: list[Payload]) -> None:
        """Append this task's payloads to the outgoing message."""

    def process(self, msg: Inbound) -> Status:
        """Consume the incoming message; raise an IkeError to fail."""
        return Status.DONE

    def round_timeout(self) -> tuple[float, IkeError] | None:
        """A leading task between rounds: how long to wait for the peer's next request
        (responder), and the error the IKE SA fails with when it does not come (also the
        initiator's, when its request of a later round goes unanswered)."""
        return None

    def finish(self, now: float) -> None:
        """The exchange completed (response processed, or our response sent)."""
