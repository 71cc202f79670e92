"""INFORMATIONAL exchanges: liveness check, IKE SA delete, CHILD SA delete (RFC 7296 §1.4, §2.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...wire.enums import NotifyType, ProtocolId
from ...wire.payloads import DeletePayload, NotifyPayload, Payload
from .. import close_action, succession
from ..children import LIVE, ChildEntry
from ..renewal import RenewalPhase
from ..task import Inbound, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost


class LivenessCheck(Task):
    """An INFORMATIONAL without deletes: the liveness check of §2.4 (answered empty), or
    an INVALID_SPI report (§2.21.4) about one of our outbound SAs."""

    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.lost: list = []

    def process(self, msg: Inbound) -> Status:
        if not self.initiator:
            reported = {
                n.data[:4] or n.spi
                for n in msg.all(NotifyPayload)
                if n.type == NotifyType.INVALID_SPI
            }
            self.lost = [c for c in self.sa.children if c.spi_out in reported]
        return Status.DONE

    def finish(self, now: float) -> None:
        if self.lost:  # the peer lost a CHILD SA: recover now instead of waiting for DPD
            spis = ", ".join(c.spi_out.hex() for c in self.lost)
            self.sa.peer_dead(f"the peer lost CHILD SA state (INVALID_SPI {spis})", now)


class InvalidSpiReport(Task):
    """Tell the peer that ESP arrived with an SPI we do not know (§2.21.4, §3.10.1)."""

    def __init__(self, sa: TaskHost, initiator: bool, spi: bytes) -> None:
        super().__init__(sa, initiator)
        self.spi = spi

    def build(self, out: list[Payload]) -> None:
        out.append(NotifyPayload(NotifyType.INVALID_SPI, self.spi, ProtocolId.ESP))


class IkeDelete(Task):
    """Delete the IKE SA and with it every CHILD SA (§1.4.1)."""

    def build(self, out: list[Payload]) -> None:
        if self.initiator:
            out.append(DeletePayload(ProtocolId.IKE))

    def finish(self, now: float) -> None:
        if not self.initiator and self.sa.renewal.phase is RenewalPhase.REKEY_COLLISION:
            succession.lost_rekey_collision(self.sa, now)
        self.sa.deleted(by_peer=not self.initiator, now=now)


class ChildDelete(Task):
    """Delete CHILD SAs; the responder answers with the SPIs of its own halves (§1.4.1)."""

    def __init__(self, sa: TaskHost, initiator: bool, spis_in: tuple[bytes, ...] = ()) -> None:
        super().__init__(sa, initiator)
        self.spis_in = spis_in
        self.entries: list[ChildEntry] = []

    def build(self, out: list[Payload]) -> None:
        spis = self.spis_in if self.initiator else tuple(e.spi_in for e in self.entries)
        if spis:
            out.append(DeletePayload(ProtocolId.ESP, spis))

    def process(self, msg: Inbound) -> Status:
        entries = self.sa.children.entries()
        if self.initiator:
            self.entries = [e for e in entries if e.spi_in in self.spis_in]
            return Status.DONE
        outbound = {
            spi for d in msg.all(DeletePayload) if d.protocol == ProtocolId.ESP for spi in d.spis
        }
        self.entries = [e for e in entries if e.child.spi_out in outbound]
        return Status.DONE

    def finish(self, now: float) -> None:
        """Remove them; the peer's delete of live ones (not after a rekey) closes them."""
        closed = [] if self.initiator else [e.child.name for e in self.entries if e.phase in LIVE]
        for entry in self.entries:
            self.sa.children.remove(entry, by_peer=not self.initiator)
        if closed:
            close_action.child_closed(self.sa.manager, self.sa, closed, now)
