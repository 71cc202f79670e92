"""Security Association payload: proposals, transforms, attributes (RFC 7296 §3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .buffer import Reader, Writer
from .enums import (
    DhId,
    EncrId,
    EsnId,
    IanaEnum,
    IntegId,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformAttr,
    TransformType,
)

TRANSFORM_IDS: dict[int, type[IanaEnum]] = {
    TransformType.ENCR: EncrId,
    TransformType.PRF: PrfId,
    TransformType.INTEG: IntegId,
    TransformType.DH: DhId,
    TransformType.ESN: EsnId,
}

_LAST_PROPOSAL, _MORE_PROPOSALS = 0, 2
_LAST_TRANSFORM, _MORE_TRANSFORMS = 0, 3
_ATTR_TV = 0x8000


@dataclass(frozen=True, slots=True)
class TransformAttribute:
    """§3.3.5: TV (``value`` is an int) or TLV (``value`` is bytes) attribute."""

    type: TransformAttr
    value: int | bytes

    @classmethod
    def pull(cls, r: Reader) -> TransformAttribute:
        kind = r.u16("attribute type")
        if kind & _ATTR_TV:
            return cls(TransformAttr(kind & 0x7FFF), r.u16("attribute value"))
        return cls(TransformAttr(kind), r.bytes(r.u16("attribute length"), "attribute value"))

    def push(self, w: Writer) -> None:
        if isinstance(self.value, int):
            w.u16(_ATTR_TV | self.type)
            w.u16(self.value)
        else:
            w.u16(self.type)
            w.u16(len(self.value))
            w.bytes(self.value)


@dataclass(frozen=True, slots=True)
class Transform:
    """§3.3.2 transform substructure; ``id`` is the enum of its transform type."""

    type: TransformType
    id: IanaEnum | int
    attributes: tuple[TransformAttribute, ...] = ()

    @classmethod
    def make(cls, type: TransformType, id: int, key_length: int | None = None) -> Transform:
        attrs = (
            ()
            if key_length is None
            else (TransformAttribute(TransformAttr.KEY_LENGTH, key_length),)
        )
        return cls(type, TRANSFORM_IDS.get(type, int)(id), attrs)

    @property
    def key_length(self) -> int | None:
        for attr in self.attributes:
            if attr.type == TransformAttr.KEY_LENGTH and isinstance(attr.value, int):
                return attr.value
        return None

    @classmethod
    def pull(cls, r: Reader) -> tuple[Transform, bool]:
        last = r.u8("transform last-substructure")
        if last not in (_LAST_TRANSFORM, _MORE_TRANSFORMS):
            raise r.fail(f"transform last-substructure value {last}, expected 0 or 3")
        r.u8()
        length = r.u16("transform length")
        if length < 8:
            raise r.fail(f"transform length {length} is below the 8-byte minimum")
        with r.restrict(length - 4, "transform"):
            ttype = TransformType(r.u8("transform type"))
            r.u8()
            tid = TRANSFORM_IDS.get(ttype, int)(r.u16("transform id"))
            attrs = []
            while r.remaining:
                attrs.append(TransformAttribute.pull(r))
        return cls(ttype, tid, tuple(attrs)), last == _MORE_TRANSFORMS

    def push(self, w: Writer, last: bool) -> None:
        w.u8(_LAST_TRANSFORM if last else _MORE_TRANSFORMS)
        w.u8(0)
        with w.block(2, header=4):
            w.u8(self.type)
            w.u8(0)
            w.u16(self.id)
            for attr in self.attributes:
                attr.push(w)


@dataclass(frozen=True, slots=True)
class Proposal:
    """§3.3.1 proposal substructure."""

    number: int
    protocol: ProtocolId
    spi: bytes
    transforms: tuple[Transform, ...]

    def of_type(self, ttype: TransformType) -> tuple[Transform, ...]:
        return tuple(t for t in self.transforms if t.type == ttype)

    @classmethod
    def pull(cls, r: Reader) -> tuple[Proposal, bool]:
        last = r.u8("proposal last-substructure")
        if last not in (_LAST_PROPOSAL, _MORE_PROPOSALS):
            raise r.fail(f"proposal last-substructure value {last}, expected 0 or 2")
        r.u8()
        length = r.u16("proposal length")
        if length < 8:
            raise r.fail(f"proposal length {length} is below the 8-byte minimum")
        with r.restrict(length - 4, "proposal"):
            number = r.u8("proposal number")
            protocol = ProtocolId(r.u8("protocol id"))
            spi_size = r.u8("SPI size")
            count = r.u8("transform count")
            spi = r.bytes(spi_size, "SPI")
            transforms = []
            more = count > 0
            while more:
                transform, more = Transform.pull(r)
                transforms.append(transform)
            if len(transforms) != count:
                raise r.fail(f"proposal announces {count} transforms but holds {len(transforms)}")
        return cls(number, protocol, spi, tuple(transforms)), last == _MORE_PROPOSALS

    def push(self, w: Writer, last: bool) -> None:
        w.u8(_LAST_PROPOSAL if last else _MORE_PROPOSALS)
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
class SaPayload:
    """§3.3 SA payload: one or more proposals in order of preference."""

    TYPE: ClassVar[PayloadType] = PayloadType.SA
    proposals: tuple[Proposal, ...] = field(default=())

    @classmethod
    def pull(cls, r: Reader) -> SaPayload:
        proposals = []
        more = True
        while more:
            proposal, more = Proposal.pull(r)
            proposals.append(proposal)
        if r.remaining:
            raise r.fail("bytes after the last proposal")
        return cls(tuple(proposals))

    def push(self, w: Writer) -> None:
        for i, proposal in enumerate(self.proposals):
            proposal.push(w, last=i == len(self.proposals) - 1)
