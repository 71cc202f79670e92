"""IKEv1 payload bodies (RFC 2408 §3.7-§3.16, RFC 2407 §4.6, RFC 3947 §3-§5, RFC 3706).

``pull`` reads the body only (the chain reads the 4-byte generic header); ``push`` writes it.
Unknown payload types survive as ``UnknownV1`` and re-encode byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Self

from .buffer import Reader, Writer
from .isakmp_enums import DOI_IPSEC, IdV1, NotifyV1, PayloadV1, ProtocolV1
from .isakmp_sa import SaV1


@dataclass(frozen=True, slots=True)
class _Opaque:
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> Self:
        return cls(r.rest())

    def push(self, w: Writer) -> None:
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class KeV1(_Opaque):
    """§3.7 key exchange: the DH public value."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.KE


@dataclass(frozen=True, slots=True)
class NonceV1(_Opaque):
    """§3.13 nonce."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.NONCE


@dataclass(frozen=True, slots=True)
class HashV1Payload(_Opaque):
    """§3.11 hash (HASH_I/R, QM HASH(1..3), Informational HASH(1))."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.HASH


@dataclass(frozen=True, slots=True)
class SigV1(_Opaque):
    """§3.12 signature."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.SIG


@dataclass(frozen=True, slots=True)
class VendorIdV1(_Opaque):
    """§3.16 vendor ID."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.VID


@dataclass(frozen=True, slots=True)
class IdV1Payload:
    """§3.8 / RFC 2407 §4.6.2 identification: type, protocol, port, data."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.ID
    id_type: IdV1
    protocol: int
    port: int
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> IdV1Payload:
        id_type = IdV1(r.u8("ID type"))
        protocol = r.u8("ID protocol")
        return cls(id_type, protocol, r.u16("ID port"), r.rest())

    def push(self, w: Writer) -> None:
        w.u8(self.id_type)
        w.u8(self.protocol)
        w.u16(self.port)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class _Encoded:
    encoding: int
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> Self:
        return cls(r.u8("certificate encoding"), r.rest())

    def push(self, w: Writer) -> None:
        w.u8(self.encoding)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class CertV1(_Encoded):
    """§3.9 certificate: encoding, data."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.CERT


@dataclass(frozen=True, slots=True)
class CertReqV1(_Encoded):
    """§3.10 certificate request: certificate type, certificate authority."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.CR


@dataclass(frozen=True, slots=True)
class NotifyV1Payload:
    """§3.14 notification: DOI, protocol, SPI (16 bytes of cookies for ISAKMP), type, data."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.N
    type: NotifyV1
    protocol: ProtocolV1
    spi: bytes = b""
    data: bytes = b""
    doi: int = DOI_IPSEC

    @classmethod
    def pull(cls, r: Reader) -> NotifyV1Payload:
        doi = r.u32("DOI")
        protocol = ProtocolV1(r.u8("protocol id"))
        spi_size = r.u8("SPI size")
        ntype = NotifyV1(r.u16("notify type"))
        spi = r.bytes(spi_size, "SPI")
        return cls(ntype, protocol, spi, r.rest(), doi)

    def push(self, w: Writer) -> None:
        w.u32(self.doi)
        w.u8(self.protocol)
        w.u8(len(self.spi))
        w.u16(self.type)
        w.bytes(self.spi)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class DeleteV1:
    """§3.15 delete: SPIs of one size; ``spi_size`` only matters when ``spis`` is empty."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.D
    protocol: ProtocolV1
    spis: tuple[bytes, ...]
    doi: int = DOI_IPSEC
    spi_size: int = 0

    @classmethod
    def pull(cls, r: Reader) -> DeleteV1:
        doi = r.u32("DOI")
        protocol = ProtocolV1(r.u8("protocol id"))
        spi_size = r.u8("SPI size")
        count = r.u16("SPI count")
        if count and not spi_size:
            raise r.fail(f"{count} SPIs of size 0")
        if count * spi_size != r.remaining:
            raise r.fail(f"{count} SPIs of {spi_size} bytes in a {r.remaining}-byte body")
        spis = tuple(r.bytes(spi_size, "SPI") for _ in range(count))
        return cls(protocol, spis, doi, spi_size if not spis else 0)

    def push(self, w: Writer) -> None:
        sizes = {len(spi) for spi in self.spis}
        if len(sizes) > 1:
            raise ValueError(f"Delete SPIs of different sizes {sorted(sizes)}")
        w.u32(self.doi)
        w.u8(self.protocol)
        w.u8(sizes.pop() if sizes else self.spi_size)
        w.u16(len(self.spis))
        for spi in self.spis:
            w.bytes(spi)


@dataclass(frozen=True, slots=True)
class NatDV1:
    """RFC 3947 §3.2 NAT discovery hash; ``draft`` keeps the pre-RFC payload number 130."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.NAT_D
    hash: bytes
    draft: bool = False

    @classmethod
    def pull(cls, r: Reader, draft: bool = False) -> NatDV1:
        return cls(r.rest(), draft)

    def push(self, w: Writer) -> None:
        w.bytes(self.hash)


@dataclass(frozen=True, slots=True)
class NatOaV1:
    """RFC 3947 §5.2 NAT original address: ID type, 3 reserved bytes, the address."""

    TYPE: ClassVar[PayloadV1] = PayloadV1.NAT_OA
    id_type: IdV1
    data: bytes
    draft: bool = False

    @classmethod
    def pull(cls, r: Reader, draft: bool = False) -> NatOaV1:
        id_type = IdV1(r.u8("ID type"))
        r.bytes(3, "NAT-OA reserved")
        return cls(id_type, r.rest(), draft)

    def push(self, w: Writer) -> None:
        w.u8(self.id_type)
        w.bytes(bytes(3))
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class FragmentV1:
    """IKEv1 fragment (strongSwan/Cisco, payload 132): ID, number, flags (bit 0 = last).

    Flag bits other than ``last`` are ignored, as strongSwan does.
    """

    TYPE: ClassVar[PayloadV1] = PayloadV1.FRAGMENT
    fragment_id: int
    number: int
    last: bool
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> FragmentV1:
        fragment_id = r.u16("fragment id")
        number = r.u8("fragment number")
        flags = r.u8("fragment flags")
        return cls(fragment_id, number, bool(flags & 1), r.rest())

    def push(self, w: Writer) -> None:
        w.u16(self.fragment_id)
        w.u8(self.number)
        w.u8(1 if self.last else 0)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class UnknownV1:
    """A payload type this codec does not parse (e.g. ATTR, SAK); kept byte for byte."""

    type: int
    body: bytes

    def push(self, w: Writer) -> None:
        w.bytes(self.body)


Payload = (
    SaV1
    | KeV1
    | IdV1Payload
    | CertV1
    | CertReqV1
    | HashV1Payload
    | SigV1
    | NonceV1
    | NotifyV1Payload
    | DeleteV1
    | VendorIdV1
    | NatDV1
    | NatOaV1
    | FragmentV1
    | UnknownV1
)

PULLERS: dict[int, Callable[[Reader], Payload]] = {
    PayloadV1.SA: SaV1.pull,
    PayloadV1.KE: KeV1.pull,
    PayloadV1.ID: IdV1Payload.pull,
    PayloadV1.CERT: CertV1.pull,
    PayloadV1.CR: CertReqV1.pull,
    PayloadV1.HASH: HashV1Payload.pull,
    PayloadV1.SIG: SigV1.pull,
    PayloadV1.NONCE: NonceV1.pull,
    PayloadV1.N: NotifyV1Payload.pull,
    PayloadV1.D: DeleteV1.pull,
    PayloadV1.VID: VendorIdV1.pull,
    PayloadV1.NAT_D: NatDV1.pull,
    PayloadV1.NAT_OA: NatOaV1.pull,
    PayloadV1.NAT_D_DRAFT: lambda r: NatDV1.pull(r, draft=True),
    PayloadV1.NAT_OA_DRAFT: lambda r: NatOaV1.pull(r, draft=True),
    PayloadV1.FRAGMENT: FragmentV1.pull,
}
"""Body decoders by payload type; any other type decodes to ``UnknownV1``."""


def pull_payload(kind: int, r: Reader) -> Payload:
    """Decode one payload body of type ``kind`` (the whole of ``r``)."""
    puller = PULLERS.get(kind)
    return puller(r) if puller else UnknownV1(kind, r.rest())


def payload_type(payload: Payload) -> int:
    """The next-payload value announcing ``payload`` (draft NAT-T and unknown types kept)."""
    if isinstance(payload, UnknownV1):
        return payload.type
    if isinstance(payload, NatDV1) and payload.draft:
        return PayloadV1.NAT_D_DRAFT
    if isinstance(payload, NatOaV1) and payload.draft:
        return PayloadV1.NAT_OA_DRAFT
    return payload.TYPE
