"""Informational exchanges: notifications, deletes and RFC 3706 Dead Peer Detection
(RFC 2408 §4.8, RFC 2409 §5.7).

An Informational is one encrypted message, HASH(1) first, never answered or retransmitted;
each has its own random message ID. DPD pairs R-U-THERE with R-U-THERE-ACK by sequence
number (RFC 3706 §5); our probes are spread inside the liveness budget like IKEv2's checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...crypto.ikev1 import quick_hash1
from ...wire.isakmp import PayloadChain, encode_chain
from ...wire.isakmp_enums import NotifyV1, ProtocolV1
from ...wire.isakmp_payloads import DeleteV1, HashV1Payload, NotifyV1Payload
from .. import close_action
from ..children import LIVE
from ..errors import InvalidSyntax
from ..randomness import Rng

if TYPE_CHECKING:
    from ..hosts import IsakmpHost


@dataclass(slots=True)
class Dpd:
    """Our R-U-THERE in flight: its sequence numbers (a new one per transmission, any of
    them acknowledges) and the waits left inside the budget."""

    sequence: int
    outstanding: set[int] = field(default_factory=set)
    waits: list[float] = field(default_factory=list)
    deadline: float | None = None
    started_at: float = 0.0
    last_sent: float = 0.0

    @classmethod
    def fresh(cls, rng: Rng) -> Dpd:
        """RFC 3706 §7: start at a random value below 2^31."""
        return cls(int.from_bytes(rng.randbytes(4), "big") & 0x7FFFFFFF)

    def next(self, now: float) -> int:
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        self.outstanding.add(self.sequence)
        self.last_sent = now
        return self.sequence

    def start(self, waits: list[float], now: float) -> int:
        self.outstanding.clear()
        self.started_at = now
        self.waits = list(waits)
        self.deadline = now + self.waits.pop(0)
        return self.next(now)

    def resend(self, now: float) -> int | None:
        """The next transmission, or None when the budget is spent."""
        if not self.waits:
            self.deadline = None
            return None
        self.deadline = now + self.waits.pop(0)
        return self.next(now)

    def acknowledged(self, sequence: int) -> bool:
        if sequence not in self.outstanding:
            return False
        self.outstanding.clear()
        self.deadline = None
        return True

    @property
    def retransmits(self) -> int:
        return max(0, len(self.outstanding) - 1)


def dpd_notify(sa: IsakmpHost, kind: NotifyV1, sequence: int) -> NotifyV1Payload:
    """R-U-THERE(-ACK): protocol ISAKMP, SPI = CKY-I | CKY-R (RFC 3706 §5.1)."""
    return NotifyV1Payload(
        kind, ProtocolV1.ISAKMP, sa.spi_i + sa.spi_r, sequence.to_bytes(4, "big")
    )


def signed_informational(keying, message_id: int, payloads: list) -> list:
    """``payloads`` behind their HASH(1) (§5.7)."""
    _, after = encode_chain(payloads)
    digest = quick_hash1(keying.prf, keying.keys.skeyid_a, message_id, after)
    return [HashV1Payload(digest), *payloads]


def verify(sa: IsakmpHost, chain: PayloadChain, message_id: int) -> None:
    """HASH(1) over everything after it (§5.7); raises InvalidSyntax if absent or wrong."""
    first = chain.payloads[0] if chain.payloads else None
    keying = sa.keying
    expected = quick_hash1(keying.prf, keying.keys.skeyid_a, message_id, chain.after(0))
    if not isinstance(first, HashV1Payload) or first.data != expected:
        raise InvalidSyntax("Informational without a valid HASH(1)")


def act(sa: IsakmpHost, chain: PayloadChain, now: float) -> None:
    """What an authenticated Informational asks for."""
    for notify in chain.all(NotifyV1Payload):
        if notify.type == NotifyV1.R_U_THERE and len(notify.data) == 4:
            sa.count("dpd_requests_answered")
            sequence = int.from_bytes(notify.data, "big")
            sa.send_informational([dpd_notify(sa, NotifyV1.R_U_THERE_ACK, sequence)], now)
        elif notify.type == NotifyV1.R_U_THERE_ACK and len(notify.data) == 4:
            sa.dpd_acknowledged(int.from_bytes(notify.data, "big"), now)
        elif notify.type.is_error:
            sa.count("peer_error_notifies")
            sa.note_peer_error(notify.type, now)
    for delete in chain.all(DeleteV1):
        if delete.protocol == ProtocolV1.ISAKMP:
            if sa.spi_i + sa.spi_r in delete.spis:
                sa.deleted(by_peer=True, now=now)
                return
        elif delete.protocol == ProtocolV1.ESP:
            _children_deleted(sa, delete.spis, now)


def _children_deleted(sa: IsakmpHost, spis: tuple[bytes, ...], now: float) -> None:
    """The peer deleted the IPsec SAs it receives on (their inbound SPIs are our outbound
    ones): remove both halves; live ones (not replaced by a rekey) get close_action."""
    entries = [e for e in sa.children.entries() if e.child.spi_out in spis]
    if not entries:
        sa.count("deletes_of_unknown_spis")
    closed = [e.child.name for e in entries if e.phase in LIVE]
    for entry in entries:
        sa.children.remove(entry, by_peer=True)
    if closed:
        close_action.child_closed(sa.manager, sa, closed, now)
