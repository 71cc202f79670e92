"""IKEv2 payload bodies (RFC 7296 §3.4-§3.16, RFC 7383 §2.5).

Each payload is a frozen dataclass with ``pull(reader)`` reading exactly its body (the
generic payload header is handled by ``message``) and ``push(writer)`` writing it.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import ClassVar

from .buffer import Reader, Writer
from .enums import (
    AuthMethod,
    CertEncoding,
    CfgType,
    ConfigAttr,
    DhId,
    EapCode,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
    member_of,
)
from .sa import SaPayload
from .traffic_selectors import TsiPayload, TsrPayload

_NOTIFY_HEAD = struct.Struct(">BBH")
_notify_type = member_of(NotifyType)
_protocol_id = member_of(ProtocolId)


@dataclass(frozen=True, slots=True)
class KePayload:
    """§3.4 Key Exchange payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.KE
    group: DhId
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> KePayload:
        group = DhId(r.u16("DH group"))
        r.u16()
        return cls(group, r.rest())

    def push(self, w: Writer) -> None:
        w.u16(self.group)
        w.u16(0)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class _IdPayload:
    """§3.5 Identification payload body shared by IDi and IDr."""

    id_type: IdType
    data: bytes

    @classmethod
    def pull(cls, r: Reader):
        id_type = IdType(r.u8("ID type"))
        r.bytes(3)
        return cls(id_type, r.rest())

    def push(self, w: Writer) -> None:
        w.u8(self.id_type)
        w.bytes(bytes(3))
        w.bytes(self.data)

    @property
    def body(self) -> bytes:
        """IDx' of §2.15: the body that the AUTH payload signs."""
        w = Writer()
        self.push(w)
        return w.getvalue()

    @property
    def text(self) -> str:
        """The identity as strongSwan prints it."""
        if self.id_type == IdType.ID_IPV4_ADDR and len(self.data) == 4:
            return str(ipaddress.IPv4Address(self.data))
        if self.id_type == IdType.ID_IPV6_ADDR and len(self.data) == 16:
            return str(ipaddress.IPv6Address(self.data))
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.decode("utf-8", "replace")
        return self.data.hex()


@dataclass(frozen=True, slots=True)
class IdiPayload(_IdPayload):
    TYPE: ClassVar[PayloadType] = PayloadType.IDI


@dataclass(frozen=True, slots=True)
class IdrPayload(_IdPayload):
    TYPE: ClassVar[PayloadType] = PayloadType.IDR


@dataclass(frozen=True, slots=True)
class CertPayload:
    """§3.6 Certificate payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.CERT
    encoding: CertEncoding
    data: bytes

    @classmethod
    def pull(cls, r: Reader):
        return cls(CertEncoding(r.u8("certificate encoding")), r.rest())

    def push(self, w: Writer) -> None:
        w.u8(self.encoding)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class CertreqPayload(CertPayload):
    """§3.7 Certificate Request payload (data: concatenated SHA-1 hashes of CA keys)."""

    TYPE: ClassVar[PayloadType] = PayloadType.CERTREQ


@dataclass(frozen=True, slots=True)
class AuthPayload:
    """§3.8 Authentication payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.AUTH
    method: AuthMethod
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> AuthPayload:
        method = AuthMethod(r.u8("auth method"))
        r.bytes(3)
        return cls(method, r.rest())

    def push(self, w: Writer) -> None:
        w.u8(self.method)
        w.bytes(bytes(3))
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class NoncePayload:
    """§3.9 Nonce payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.NONCE
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> NoncePayload:
        return cls(r.rest())

    def push(self, w: Writer) -> None:
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class NotifyPayload:
    """§3.10 Notify payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.NOTIFY
    type: NotifyType
    data: bytes = b""
    protocol: ProtocolId = ProtocolId.NONE
    spi: bytes = b""

    @classmethod
    def pull(cls, r: Reader) -> NotifyPayload:
        protocol, spi_size, ntype = r.fields(_NOTIFY_HEAD, "protocol id, SPI size, notify type")
        spi = r.bytes(spi_size, "SPI") if spi_size else b""
        return cls(_notify_type(ntype), r.rest(), _protocol_id(protocol), spi)

    def push(self, w: Writer) -> None:
        w.bytes(_NOTIFY_HEAD.pack(self.protocol, len(self.spi), self.type))
        w.bytes(self.spi)
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class DeletePayload:
    """§3.11 Delete payload; no SPIs for the IKE SA itself."""

    TYPE: ClassVar[PayloadType] = PayloadType.DELETE
    protocol: ProtocolId
    spis: tuple[bytes, ...] = ()

    @classmethod
    def pull(cls, r: Reader) -> DeletePayload:
        protocol = ProtocolId(r.u8("protocol id"))
        spi_size = r.u8("SPI size")
        count = r.u16("SPI count")
        if count and not spi_size:
            raise r.fail(f"{count} SPIs of size 0")
        spis = tuple(r.bytes(spi_size, "SPI") for _ in range(count))
        return cls(protocol, spis)

    def push(self, w: Writer) -> None:
        w.u8(self.protocol)
        w.u8(len(self.spis[0]) if self.spis else 0)
        w.u16(len(self.spis))
        for spi in self.spis:
            w.bytes(spi)


@dataclass(frozen=True, slots=True)
class VendorPayload:
    """§3.12 Vendor ID payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.VENDOR
    data: bytes

    @classmethod
    def pull(cls, r: Reader) -> VendorPayload:
        return cls(r.rest())

    def push(self, w: Writer) -> None:
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class ConfigAttribute:
    """§3.15.1 configuration attribute."""

    type: ConfigAttr
    value: bytes = b""


@dataclass(frozen=True, slots=True)
class CpPayload:
    """§3.15 Configuration payload."""

    TYPE: ClassVar[PayloadType] = PayloadType.CP
    cfg_type: CfgType
    attributes: tuple[ConfigAttribute, ...] = ()

    @classmethod
    def pull(cls, r: Reader) -> CpPayload:
        cfg_type = CfgType(r.u8("CFG type"))
        r.bytes(3)
        attrs = []
        while r.remaining:
            kind = ConfigAttr(r.u16("attribute type") & 0x7FFF)
            attrs.append(ConfigAttribute(kind, r.bytes(r.u16("attribute length"), "value")))
        return cls(cfg_type, tuple(attrs))

    def push(self, w: Writer) -> None:
        w.u8(self.cfg_type)
        w.bytes(bytes(3))
        for attr in self.attributes:
            w.u16(attr.type)
            w.u16(len(attr.value))
            w.bytes(attr.value)


@dataclass(frozen=True, slots=True)
class EapPayload:
    """§3.16 EAP payload carrying one RFC 3748 message; ``data`` starts at the Type field."""

    TYPE: ClassVar[PayloadType] = PayloadType.EAP
    code: EapCode
    identifier: int
    data: bytes = b""

    @classmethod
    def pull(cls, r: Reader) -> EapPayload:
        code = EapCode(r.u8("EAP code"))
        identifier = r.u8("EAP identifier")
        length = r.u16("EAP length")
        if length != 4 + r.remaining:
            raise r.fail(f"EAP length {length} disagrees with payload length {4 + r.remaining}")
        return cls(code, identifier, r.rest())

    def push(self, w: Writer) -> None:
        w.u8(self.code)
        w.u8(self.identifier)
        w.u16(4 + len(self.data))
        w.bytes(self.data)


@dataclass(frozen=True, slots=True)
class EncryptedPayload:
    """§3.14 Encrypted and Authenticated payload: IV, ciphertext, ICV (opaque here).

    ``first_inner`` is the Next Payload field: the type of the first payload inside.
    """

    TYPE: ClassVar[PayloadType] = PayloadType.SK
    first_inner: PayloadType
    body: bytes

    @classmethod
    def pull(cls, r: Reader) -> EncryptedPayload:
        raise AssertionError("decoded by the message codec")

    def push(self, w: Writer) -> None:
        w.bytes(self.body)


@dataclass(frozen=True, slots=True)
class EncryptedFragmentPayload:
    """RFC 7383 §2.5 Encrypted Fragment payload; ``first_inner`` is set in fragment 1 only."""

    TYPE: ClassVar[PayloadType] = PayloadType.SKF
    first_inner: PayloadType
    number: int
    total: int
    body: bytes

    @classmethod
    def pull(cls, r: Reader) -> EncryptedFragmentPayload:
        raise AssertionError("decoded by the message codec")

    def push(self, w: Writer) -> None:
        w.u16(self.number)
        w.u16(self.total)
        w.bytes(self.body)


@dataclass(frozen=True, slots=True)
class UnknownPayload:
    """A payload type this implementation does not know; re-encodes byte for byte."""

    type: PayloadType
    critical: bool
    body: bytes

    @property
    def TYPE(self) -> PayloadType:  # noqa: N802 - mirrors the ClassVar of known payloads
        return self.type

    def push(self, w: Writer) -> None:
        w.bytes(self.body)


Payload = (
    SaPayload
    | KePayload
    | IdiPayload
    | IdrPayload
    | CertPayload
    | CertreqPayload
    | AuthPayload
    | NoncePayload
    | NotifyPayload
    | DeletePayload
    | VendorPayload
    | TsiPayload
    | TsrPayload
    | CpPayload
    | EapPayload
    | EncryptedPayload
    | EncryptedFragmentPayload
    | UnknownPayload
)

PAYLOAD_CLASSES: dict[PayloadType, type] = {
    cls.TYPE: cls
    for cls in (
        SaPayload,
        KePayload,
        IdiPayload,
        IdrPayload,
        CertPayload,
        CertreqPayload,
        AuthPayload,
        NoncePayload,
        NotifyPayload,
        DeletePayload,
        VendorPayload,
        TsiPayload,
        TsrPayload,
        CpPayload,
        EapPayload,
    )
}
