"""IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (RFC 7383 §2.3): the initiator announces
it unless ``fragmentation = no``; the responder answers with it only if the initiator
announced it and its own connection allows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...wire.enums import NotifyType
from ...wire.payloads import NotifyPayload, Payload
from ..task import Inbound, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost

_RETRY = (NotifyType.COOKIE, NotifyType.INVALID_KE_PAYLOAD)


class FragmentationSupport(Task):
    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.peer_supports = False

    def build(self, out: list[Payload]) -> None:
        if self.sa.connection is None or not self.sa.connection.fragmentation.announced:
            return
        if self.initiator or self.peer_supports:
            out.append(NotifyPayload(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED, b""))

    def process(self, msg: Inbound) -> Status:
        if self.initiator and any(msg.notify(kind) is not None for kind in _RETRY):
            return Status.NEED_MORE  # IKE_SA_INIT goes again: announce it there too
        self.peer_supports = msg.notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) is not None
        return Status.DONE

    def finish(self, now: float) -> None:
        announced = self.sa.connection.fragmentation.announced
        self.sa.fragments.peer_announced(announced and self.peer_supports)
