"""IKEv1 SA payload: proposals, transforms, data attributes (RFC 2408 §3.3-§3.6, RFC 2407 §4.6.1).

Phase 1 and phase 2 share the layout; what an attribute type means depends on the proposal's
protocol (``Phase1Attr`` for ISAKMP, ``Phase2Attr`` for AH/ESP), so ``AttributeV1.type`` is a
plain int here and the reader picks the enum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .buffer import Reader, Writer
from .isakmp_enums import DOI_IPSEC, SIT_IDENTITY_ONLY, PayloadV1, ProtocolV1

MAX_PROPOSALS = 64
MAX_TRANSFORMS = 64
MAX_ATTRIBUTES = 64
"""Bounds on what one SA payload may hold (more is a DecodeError, not work)."""

_AF = 0x8000
_LAST, _MORE_PROPOSALS, _MORE_TRANSFORMS = 0, PayloadV1.PROPOSAL, PayloadV1.TRANSFORM


@dataclass(frozen=True, slots=True)
class AttributeV1:
    """§3.3 data attribute: AF set -> TV (``value`` an int), else TLV (``value`` bytes).

    Encoding an int of 65536 or more gives a TLV of whole 32-bit words: 4 bytes up to
    2**32 - 1 (the usual LIFE_DURATION), 8 above, as strongSwan sends them.
    """

    type: int
    value: int | bytes

    @property
    def number(self) -> int:
        """The value as an integer (a TLV's bytes read big-endian)."""
        if isinstance(self.value, int):
            return self.value
        return int.from_bytes(self.value, "big")

    @classmethod
    def pull(cls, r: Reader) -> AttributeV1:
        kind = r.u16("attribute type")
        if kind & _AF:
            return cls(kind & 0x7FFF, r.u16("attribute value"))
        return cls(kind, r.bytes(r.u16("attribute length"), "attribute value"))

    def push(self, w: Writer) -> None:
        value = self.value
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"attribute {self.type}: negative value {value}")
            if value < 1 << 16:
                w.u16(_AF | self.type)
                w.u16(value)
                return
            words = (value.bit_length() + 31) // 32
            value = value.to_bytes(4 * words, "big")
        w.u16(self.type)
        w.u16(len(value))
        w.bytes(value)


def _pull_attributes(r: Reader) -> tuple[AttributeV1, ...]:
    attrs: list[AttributeV1] = []
    while r.remaining:
        if len(attrs) == MAX_ATTRIBUTES:
            raise r.fail(f"more than {MAX_ATTRIBUTES} attributes in one transform")
        attrs.append(AttributeV1.pull(r))
    return tuple(attrs)


def _substructure(r: Reader, more: int, what: str) -> tuple[int, bool]:
    """Read a proposal/transform header; return (body length, more follow)."""
    nxt = r.u8(f"{what} next payload")
    if nxt not in (_LAST, more):
        raise r.fail(f"{what} next payload {nxt}, expected 0 or {more}")
    r.u8()
    length = r.u16(f"{what} length")
    if length < 8:
        raise r.fail(f"{what} length {length} is below the 8-byte minimum")
    return length - 4, nxt == more


@dataclass(frozen=True, slots=True)
class TransformV1:
    """§3.6 transform payload: number, transform ID, SA attributes."""

    number: int
    transform_id: int
    attributes: tuple[AttributeV1, ...] = ()

    def attr(self, type: int) -> AttributeV1 | None:
        """The first attribute of ``type``."""
        return next((a for a in self.attributes if a.type == type), None)

    @classmethod
    def pull(cls, r: Reader) -> tuple[TransformV1, bool]:
        length, more = _substructure(r, _MORE_TRANSFORMS, "transform")
        with r.restrict(length, "transform"):
            number = r.u8("transform number")
            tid = r.u8("transform id")
            r.u16("transform reserved")
            attrs = _pull_attributes(r)
        return cls(number, tid, attrs), more

    def push(self, w: Writer, last: bool) -> None:
        w.u8(_LAST if last else _MORE_TRANSFORMS)
        w.u8(0)
        with w.block(2, header=4):
            w.u8(self.number)
            w.u8(self.transform_id)
            w.u16(0)
            for attr in self.attributes:
                attr.push(w)


@dataclass(frozen=True, slots=True)
class ProposalV1:
    """§3.5 proposal payload; proposals sharing a number are a bundle (AND)."""

    number: int
    protocol: ProtocolV1
    spi: bytes
    transforms: tuple[TransformV1, ...]

    @classmethod
    def pull(cls, r: Reader) -> tuple[ProposalV1, bool]:
        length, more = _substructure(r, _MORE_PROPOSALS, "proposal")
        with r.restrict(length, "proposal"):
            number = r.u8("proposal number")
            protocol = ProtocolV1(r.u8("protocol id"))
            spi_size = r.u8("SPI size")
            count = r.u8("transform count")
            if count > MAX_TRANSFORMS:
                raise r.fail(f"{count} transforms, at most {MAX_TRANSFORMS} accepted")
            spi = r.bytes(spi_size, "SPI")
            transforms: list[TransformV1] = []
            more_transforms = count > 0
            while more_transforms:
                if len(transforms) == count:
                    raise r.fail(f"proposal announces {count} transforms but holds more")
                transform, more_transforms = TransformV1.pull(r)
                transforms.append(transform)
            if len(transforms) != count:
                raise r.fail(f"proposal announces {count} transforms but holds {len(transforms)}")
        return cls(number, protocol, spi, tuple(transforms)), more

    def push(self, w: Writer, last: bool) -> None:
        w.u8(_LAST if last else _MORE_PROPOSALS)
        w.u8(0)
        with w.block(2, header=4):
            w.u8(self.number)
            w.u8(self.protocol)
            w.u8(len(self.spi))
            w.u8(len(self.transforms))
            w.bytes(self.spi)
            for i, transform in enumerate(self.transforms):
                transform.push(w, last=i == len(self.transforms) - 1)


@dataclass(frozen=True, slots=True)
class SaV1:
    """§3.4 SA payload: DOI, situation (4 bytes for the IPsec DOI, RFC 2407 §4.6.1), proposals."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.SA
    proposals: tuple[ProposalV1, ...]
    doi: int = DOI_IPSEC
    situation: int = SIT_IDENTITY_ONLY

    @classmethod
    def pull(cls, r: Reader) -> SaV1:
        doi = r.u32("DOI")
        situation = r.u32("situation")
        proposals: list[ProposalV1] = []
        more = True
        while more:
            if len(proposals) == MAX_PROPOSALS:
                raise r.fail(f"more than {MAX_PROPOSALS} proposals")
            proposal, more = ProposalV1.pull(r)
            proposals.append(proposal)
        return cls(tuple(proposals), doi, situation)

    def push(self, w: Writer) -> None:
        w.u32(self.doi)
        w.u32(self.situation)
        for i, proposal in enumerate(self.proposals):
            proposal.push(w, last=i == len(self.proposals) - 1)
