"""Proposal and traffic selector negotiation (RFC 7296 §2.7, §2.9, §3.3.6)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ..wire.enums import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType
from ..wire.sa import Proposal, Transform
from ..wire.traffic_selectors import TrafficSelector
from .errors import NoProposalChosen, TsUnacceptable
from .proposal import CryptoProposal


@dataclass(frozen=True, slots=True)
class Suite:
    """One algorithm of each transform type: what a proposal negotiation settles on."""

    protocol: ProtocolId
    encr: tuple[EncrId, int | None]
    integ: IntegId | None = None
    prf: PrfId | None = None
    dh: DhId | None = None
    esn: EsnId | None = None

    def transforms(self) -> tuple[Transform, ...]:
        out = [Transform.make(TransformType.ENCR, self.encr[0], self.encr[1])]
        if self.prf is not None:
            out.append(Transform.make(TransformType.PRF, self.prf))
        if self.integ is not None:
            out.append(Transform.make(TransformType.INTEG, self.integ))
        if self.dh is not None:
            out.append(Transform.make(TransformType.DH, self.dh))
        if self.esn is not None:
            out.append(Transform.make(TransformType.ESN, self.esn))
        return tuple(out)

    def __str__(self) -> str:
        return str(
            CryptoProposal(
                protocol=self.protocol,
                encr=(self.encr,),
                integ=() if self.integ is None else (self.integ,),
                prf=() if self.prf is None else (self.prf,),
                dh=() if self.dh in (None, DhId.NONE) else (self.dh,),
                esn=() if self.esn is None else (self.esn,),
            )
        )


def to_wire(
    proposals: Sequence[CryptoProposal], spi: bytes = b"", with_dh: bool = True
) -> tuple[Proposal, ...]:
    """Our configured proposals as SA payload proposals numbered from 1 (§3.3.1)."""
    out = []
    for number, p in enumerate(proposals, start=1):
        transforms = [Transform.make(TransformType.ENCR, e, bits) for e, bits in p.encr]
        transforms += [Transform.make(TransformType.PRF, x) for x in p.prf]
        transforms += [Transform.make(TransformType.INTEG, x) for x in p.integ]
        if with_dh:
            transforms += [Transform.make(TransformType.DH, x) for x in p.dh]
        if p.protocol != ProtocolId.IKE:
            transforms += [Transform.make(TransformType.ESN, x) for x in p.esn or (EsnId.NO_ESN,)]
        out.append(Proposal(number, p.protocol, spi, tuple(transforms)))
    return tuple(out)


def _pick(ours: Sequence, theirs: Sequence[Transform], ttype: TransformType, key=None):
    offered = [(t.id, t.key_length) if key else t.id for t in theirs if t.type == ttype]
    for candidate in ours:
        if candidate in offered:
            return candidate
    return None


def _match(ours: CryptoProposal, theirs: Proposal, with_dh: bool) -> Suite | None:
    t = theirs.transforms
    encr = _pick(ours.encr, t, TransformType.ENCR, key=True)
    if encr is None:
        return None
    offered_integ = [x.id for x in t if x.type == TransformType.INTEG and x.id != IntegId.NONE]
    integ = _pick(ours.integ, t, TransformType.INTEG)
    if (ours.integ and integ is None) or (not ours.integ and offered_integ):
        return None
    prf = _pick(ours.prf, t, TransformType.PRF)
    if ours.prf and prf is None:
        return None
    dh = None
    if with_dh and ours.dh:
        dh = _pick(ours.dh, t, TransformType.DH)
        if dh is None:
            return None
    elif with_dh and any(x.type == TransformType.DH and x.id != DhId.NONE for x in t):
        return None
    esn = None
    if theirs.protocol != ProtocolId.IKE:
        esn = _pick(ours.esn or (EsnId.NO_ESN,), t, TransformType.ESN)
        if esn is None:
            return None
    return Suite(theirs.protocol, encr, integ, prf, dh, esn)


def select(
    ours: Sequence[CryptoProposal], theirs: Sequence[Proposal], with_dh: bool = True
) -> tuple[Proposal, Suite]:
    """Pick the first of our proposals (our preference order) that the peer offered.

    Returns the peer's proposal (its number and SPI) and the chosen suite; raises
    NoProposalChosen. ``with_dh`` False ignores DH transforms (first CHILD SA, §1.2).
    """
    for mine in ours:
        for offered in theirs:
            if offered.protocol != mine.protocol:
                continue
            suite = _match(mine, offered, with_dh)
            if suite is not None:
                return offered, suite
    ours_text = ", ".join(map(str, ours))
    raise NoProposalChosen(f"no proposal of the peer matches ours ({ours_text})")


def accept_chosen(
    ours: Sequence[CryptoProposal], chosen: Sequence[Proposal], with_dh: bool = True
) -> tuple[Proposal, Suite]:
    """Check that the responder's single chosen proposal is one we offered (§3.3.6)."""
    if len(chosen) != 1:
        raise NoProposalChosen(f"responder chose {len(chosen)} proposals instead of one")
    proposal, suite = select(ours, chosen, with_dh)
    types = [
        t.type
        for t in proposal.transforms
        if not (t.type == TransformType.INTEG and t.id == IntegId.NONE)
    ]
    if len(types) != len(set(types)):
        raise NoProposalChosen("responder chose more than one transform of a type")
    return proposal, suite


# --- Traffic selectors (§2.9) ---------------------------------------------------------------


def _intersect(a: TrafficSelector, b: TrafficSelector) -> TrafficSelector | None:
    if a.start.version != b.start.version:
        return None
    if a.protocol and b.protocol and a.protocol != b.protocol:
        return None
    start, end = max(a.start, b.start), min(a.end, b.end)
    low, high = max(a.start_port, b.start_port), min(a.end_port, b.end_port)
    if start > end or low > high:
        return None
    return TrafficSelector(start, end, a.protocol or b.protocol, low, high)


def narrow(
    proposed: Sequence[TrafficSelector], allowed: Sequence[TrafficSelector]
) -> tuple[TrafficSelector, ...]:
    """Intersect the peer's selectors with ours, keeping our order and dropping duplicates."""
    out: list[TrafficSelector] = []
    for mine in allowed:
        for theirs in proposed:
            ts = _intersect(theirs, mine)
            if ts is not None and ts not in out:
                out.append(ts)
    return tuple(out)


def narrow_or_fail(
    proposed: Sequence[TrafficSelector], allowed: Sequence[TrafficSelector], side: str
) -> tuple[TrafficSelector, ...]:
    result = narrow(proposed, allowed)
    if not result:
        got = ", ".join(map(str, proposed)) or "nothing"
        want = ", ".join(map(str, allowed)) or "nothing"
        raise TsUnacceptable(f"{side} {got} does not overlap configured {want}")
    return result


def is_subset(inner: Sequence[TrafficSelector], outer: Sequence[TrafficSelector]) -> bool:
    """Every selector of ``inner`` lies inside one of ``outer`` (responder narrowed honestly)."""
    return all(any(_intersect(ts, o) == ts for o in outer) for ts in inner)


def host_selector(address: str) -> TrafficSelector:
    """The "dynamic" selector: just the SA's own outer address."""
    ip = ipaddress.ip_address(address)
    return TrafficSelector(ip, ip)
