"""Where an IKEv1 datagram goes: the ISAKMP SA its cookies name, or a new responder SA for
a first Main or Aggressive Mode message (RFC 2408 §2.5.3, §3.1), if the gate admits it.

IKEv1 has no stateless cookie challenge: RFC 2408 §2.5.3's anti-clogging "cookie" is the
SPI pair itself, which spares the responder work only if it keeps no state until the
initiator has echoed the responder cookie. We keep state on MM1 and AM1: one half-open
``IsakmpSa`` with the initiator's proposals and, in Aggressive Mode, the DH result behind
AM2 (RFC 2409 §5.4: the responder does DH before it hears back). So the same policy as
IKEv2 less cookies (``core.gate``) runs before the SA exists, and so before any DH work:
the per-source token bucket, the per-source half-open cap (configured peers exempt) and an
overall cap that evicts the oldest; drops are counted, never logged. A responder does not
retransmit MM2/AM2 on its own: an unanswered spoofed message costs one datagram out."""

from __future__ import annotations

from ...wire.isakmp import IsakmpMessage, decode_isakmp
from ...wire.isakmp_enums import ExchangeV1
from ..admission import creates_sa
from ..errors import Dropped
from ..events import Address
from ..hosts import SaRegistry
from ..state import IkeState
from .isakmp_sa import IsakmpSa

PHASE1 = (ExchangeV1.MAIN, ExchangeV1.AGGRESSIVE)


class V1Intake:
    """IKEv1 input of one SA manager (its half-open responder SAs are the gate's)."""

    def __init__(self, manager: SaRegistry) -> None:
        self.manager = manager

    def receive(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        icookie = data[:8]
        if creates_sa(data) and icookie not in self.manager.sas:
            if self.manager.gate.half_open(1, icookie, src) is None:
                self.manager.gate.admit_v1(src, now)  # from the header: before any decoding
        msg = decode_isakmp(data)
        sa = self._find(msg, src)
        if sa is None:
            if msg.exchange not in PHASE1 or msg.message_id or any(msg.rcookie):
                raise Dropped("unknown_spi", f"no ISAKMP SA with cookies {msg.icookie.hex()}")
            sa = self._responder(msg, src, dst, now)
        self.manager.sas.touch(sa)
        sa.receive(data, msg, src, dst, now)

    def _find(self, msg: IsakmpMessage, src: Address) -> IsakmpSa | None:
        sas = self.manager.sas
        ours = sas.get(msg.rcookie)
        if isinstance(ours, IsakmpSa) and not ours.initiator and ours.spi_i == msg.icookie:
            return ours
        ours = sas.get(msg.icookie)
        if isinstance(ours, IsakmpSa) and ours.initiator:
            if not any(ours.spi_r) or ours.spi_r == msg.rcookie:
                return ours
        found = self.manager.gate.half_open(1, msg.icookie, src)
        return found if isinstance(found, IsakmpSa) else None

    def _responder(self, msg: IsakmpMessage, src: Address, dst: Address, now: float) -> IsakmpSa:
        manager = self.manager
        if msg.is_encrypted or not msg.icookie or not any(msg.icookie):
            raise Dropped("malformed", "first phase 1 message encrypted or without a cookie")
        candidates = manager.matching(src[0], dst[0], 1)
        if not candidates:
            raise Dropped("no_connection", f"no IKEv1 connection accepts {src[0]}")
        sa = IsakmpSa(
            manager, initiator=False, spi_i=msg.icookie, spi_r=manager.new_ike_spi(),
            local=dst, remote=src, candidates=candidates, now=now,
            aggressive=msg.exchange == ExchangeV1.AGGRESSIVE,
        )  # fmt: skip
        sa.state_to(IkeState.CONNECTING)
        manager.sas[sa.local_spi] = sa
        manager.gate.opened_v1(sa, msg.icookie, src, now)
        return sa
