"""NAT detection in IKE_SA_INIT (RFC 7296 §2.23): NAT_DETECTION_SOURCE/DESTINATION_IP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...wire.enums import NotifyType
from ...wire.payloads import NotifyPayload, Payload
from ..mobility import natd_hash
from ..task import Inbound, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost

_RETRY = (NotifyType.COOKIE, NotifyType.INVALID_KE_PAYLOAD)
"""Answers to IKE_SA_INIT that carry no NAT-D because the request must be sent again."""


class NatDetection(Task):
    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.peer_supports = initiator

    def build(self, out: list[Payload]) -> None:
        if not self.peer_supports:
            return
        sa = self.sa
        spi_r = sa.spi_r if not self.initiator else bytes(8)
        source = natd_hash(sa.spi_i, spi_r, sa.local)
        if sa.connection is not None and sa.connection.force_encap:
            # A source hash that cannot match makes the peer see a NAT and use UDP encapsulation.
            source = sa.rng.randbytes(len(source))
        out.append(NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, source))
        out.append(
            NotifyPayload(
                NotifyType.NAT_DETECTION_DESTINATION_IP, natd_hash(sa.spi_i, spi_r, sa.remote)
            )
        )

    def process(self, msg: Inbound) -> Status:
        if self.initiator and any(msg.notify(kind) is not None for kind in _RETRY):
            return Status.NEED_MORE  # §2.6/§1.3: IKE_SA_INIT goes again, with NAT-D again
        sources = [
            n.data for n in msg.all(NotifyPayload) if n.type == NotifyType.NAT_DETECTION_SOURCE_IP
        ]
        destination = msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
        if not sources or destination is None:
            self.peer_supports = False
            return Status.DONE
        self.peer_supports = True
        sa, header = self.sa, msg.message
        sa.nat_detected(
            local=natd_hash(header.spi_i, header.spi_r, sa.local) != destination.data,
            remote=natd_hash(header.spi_i, header.spi_r, sa.remote) not in sources,
        )
        return Status.DONE

    def finish(self, now: float) -> None:
        if self.initiator:
            self.sa.float_to_natt_port(natt_supported=self.peer_supports)
