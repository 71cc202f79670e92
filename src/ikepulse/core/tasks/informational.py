"""INFORMATIONAL exchanges: liveness check, IKE SA delete, CHILD SA delete (RFC 7296 §1.4, §2.4)."""

from __future__ import annotations

from ...wire.enums import ExchangeType, ProtocolId
from ...wire.payloads import DeletePayload, Payload
from ..task import Inbound, Status, Task


class Informational(Task):
    """An empty INFORMATIONAL: the liveness check of §2.4, answered with an empty response."""

    exchange = ExchangeType.INFORMATIONAL


class IkeDelete(Task):
    """Delete the IKE SA and with it every CHILD SA (§1.4.1)."""

    exchange = ExchangeType.INFORMATIONAL

    def build(self, out: list[Payload]) -> None:
        if self.initiator:
            out.append(DeletePayload(ProtocolId.IKE))

    def finish(self, now: float) -> None:
        self.sa.deleted(by_peer=not self.initiator)


class ChildDelete(Task):
    """Delete CHILD SAs; the responder answers with the SPIs of its own halves (§1.4.1)."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, sa, initiator: bool, spis_in: tuple[bytes, ...] = ()) -> None:
        super().__init__(sa, initiator)
        self.spis_in = spis_in
        self.children: list = []

    def build(self, out: list[Payload]) -> None:
        spis = self.spis_in if self.initiator else tuple(c.spi_in for c in self.children)
        if spis:
            out.append(DeletePayload(ProtocolId.ESP, spis))

    def process(self, msg: Inbound) -> Status:
        if self.initiator:
            self.children = [c for c in self.sa.children if c.spi_in in self.spis_in]
            return Status.DONE
        outbound = {
            spi for d in msg.all(DeletePayload) if d.protocol == ProtocolId.ESP for spi in d.spis
        }
        self.children = [c for c in self.sa.children if c.spi_out in outbound]
        return Status.DONE

    def finish(self, now: float) -> None:
        for child in self.children:
            self.sa.remove_child(child, by_peer=not self.initiator)
