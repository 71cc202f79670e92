"""IKE header and payload chain (RFC 7296 §3.1, §3.2), plus SK seal/open (§3.14); SKF
fragments are sealed and opened in ``skf``.

``decode_message`` turns a datagram into a ``Message`` whose SK payload is still opaque;
``open_encrypted`` turns it into the inner payloads once keys are known.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .buffer import DecodeError, Reader, Writer
from .enums import ExchangeType, PayloadType, member_of
from .payloads import (
    PAYLOAD_CLASSES,
    EncryptedFragmentPayload,
    EncryptedPayload,
    Payload,
    UnknownPayload,
)

HEADER_SIZE = 28
IKEV2_VERSION = 0x20
FLAG_INITIATOR = 0x08
FLAG_VERSION = 0x10
FLAG_RESPONSE = 0x20
_CRITICAL = 0x80
_ENCRYPTED = (PayloadType.SK, PayloadType.SKF)
_NONE, _SK, _SKF = PayloadType.NONE, PayloadType.SK, PayloadType.SKF
_GENERIC = struct.Struct(">BBH")
"""The generic payload header (§3.2): next payload, critical bit and reserved, length."""
_payload_type = member_of(PayloadType)
_ENCRYPTED_CLASSES = (EncryptedPayload, EncryptedFragmentPayload)
_WHAT = {kind: f"{kind.name} payload" for kind in PAYLOAD_CLASSES}
_exchange_type = member_of(ExchangeType)


@dataclass(frozen=True, slots=True)
class Message:
    """One IKE message: header fields plus payloads (outer payloads only if encrypted)."""

    spi_i: bytes
    spi_r: bytes
    exchange: ExchangeType
    flags: int
    message_id: int
    payloads: tuple[Payload, ...] = ()
    version: int = IKEV2_VERSION

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def is_initiator(self) -> bool:
        """Sent by the original initiator of the IKE SA (§3.1 I flag)."""
        return bool(self.flags & FLAG_INITIATOR)

    @property
    def encrypted(self) -> EncryptedPayload | EncryptedFragmentPayload | None:
        for payload in self.payloads:
            if isinstance(payload, _ENCRYPTED_CLASSES):
                return payload
        return None

    def get(self, cls: type) -> list:
        return [p for p in self.payloads if isinstance(p, cls)]


def _pull_chain(r: Reader, first: PayloadType) -> list[Payload]:
    payloads: list[Payload] = []
    kind = first
    while kind != _NONE:
        at = r.offset
        next_value, flags, length = r.fields(_GENERIC, "generic payload header")
        next_kind = _payload_type(next_value)
        if length < 4:
            raise DecodeError(at, f"{kind.name} payload length {length} is below 4")
        if kind == _SK:  # opaque until opened: no restricted reader needed
            payloads.append(EncryptedPayload(next_kind, r.bytes(length - 4, "SK payload")))
        elif kind == _SKF:
            with r.restrict(length - 4, "SKF payload"):
                # Numbers out of range are the reassembly's to count (RFC 7383 §2.6).
                number, total = r.u16("fragment number"), r.u16("total fragments")
                payloads.append(EncryptedFragmentPayload(next_kind, number, total, r.rest()))
        elif (cls := PAYLOAD_CLASSES.get(kind)) is not None:
            with r.restrict(length - 4, _WHAT[kind]):
                payloads.append(cls.pull(r))
        else:
            body = r.bytes(length - 4, f"{kind.name} payload")
            payloads.append(UnknownPayload(kind, bool(flags & _CRITICAL), body))
        if kind in _ENCRYPTED:
            if r.remaining:
                raise r.fail(
                    f"{r.remaining} bytes after the {kind.name} payload, which must be last"
                )
            break
        kind = next_kind
    if r.remaining:
        raise r.fail(f"{r.remaining} bytes after the last payload")
    return payloads


def decode_payloads(data: bytes, first: PayloadType) -> list[Payload]:
    """Decode a bare payload chain, as found inside a decrypted SK payload."""
    return _pull_chain(Reader(data), first)


_HEADER = struct.Struct(">8s8sBBBBII")
_FIELDS = (
    (8, "initiator SPI"), (8, "responder SPI"), (1, "next payload"), (1, "version"),
    (1, "exchange type"), (1, "flags"), (4, "message id"), (4, "message length"),
)  # fmt: skip


def _header(data: bytes) -> tuple[tuple, PayloadType]:
    """The header's fields (spi_i, spi_r, exchange, flags, message id, version) and the
    first payload's type."""
    if len(data) < HEADER_SIZE:  # the reader names the field that is cut short
        r = Reader(data)
        for size, what in _FIELDS:
            r.bytes(size, what)
    spi_i, spi_r, first, version, exchange, flags, message_id, length = _HEADER.unpack_from(data)
    first = _payload_type(first)
    exchange = _exchange_type(exchange)
    if length != len(data):
        raise DecodeError(24, f"header says {length} bytes, datagram has {len(data)}")
    return (spi_i, spi_r, exchange, flags, message_id, version), first


def decode_header(data: bytes) -> tuple[Message, PayloadType]:
    """Decode only the 28-byte header (for SPI demultiplexing before the payloads)."""
    (spi_i, spi_r, exchange, flags, message_id, version), first = _header(data)
    return Message(spi_i, spi_r, exchange, flags, message_id, (), version), first


def decode_message(data: bytes) -> Message:
    """Decode a datagram; raises only DecodeError."""
    (spi_i, spi_r, exchange, flags, message_id, version), first = _header(data)
    if version >> 4 != 2:
        raise DecodeError(17, f"major version {version >> 4}, only 2 is supported")
    if first == _SK and len(data) >= HEADER_SIZE + 4:  # the usual: SK, alone and last
        next_kind, _, length = _GENERIC.unpack_from(data, HEADER_SIZE)
        if length == len(data) - HEADER_SIZE:  # else the chain reader names the fault
            sk = EncryptedPayload(_payload_type(next_kind), bytes(data[HEADER_SIZE + 4 :]))
            return Message(spi_i, spi_r, exchange, flags, message_id, (sk,), version)
    payloads = tuple(_pull_chain(Reader(data, HEADER_SIZE), first))
    return Message(spi_i, spi_r, exchange, flags, message_id, payloads, version)


def push_chain(
    w: Writer, payloads: list[Payload] | tuple[Payload, ...], after: PayloadType
) -> None:
    """Write ``payloads`` with their generic headers, the last one pointing at ``after``."""
    last = len(payloads) - 1
    for i, payload in enumerate(payloads):
        if isinstance(payload, _ENCRYPTED_CLASSES):
            next_kind = payload.first_inner
        elif i < last:
            next_kind = payloads[i + 1].TYPE
        else:
            next_kind = after
        critical = isinstance(payload, UnknownPayload) and payload.critical
        at = len(w)
        w.bytes(_GENERIC.pack(next_kind, _CRITICAL if critical else 0, 0))
        payload.push(w)
        length = len(w) - at
        if length > 0xFFFF:
            raise ValueError(f"block of {length} bytes does not fit a 2-byte length")
        w.patch_u16(at + 2, length)


def push_header(w: Writer, msg: Message, first: PayloadType) -> None:
    """The 28-byte IKE header, its length left 0 for the caller to patch (octets 24-27)."""
    w.bytes(msg.spi_i)
    w.bytes(msg.spi_r)
    w.u8(first)
    w.u8(msg.version)
    w.u8(msg.exchange)
    w.u8(msg.flags)
    w.u32(msg.message_id)
    w.u32(0)


def encode_message(msg: Message) -> bytes:
    """Encode a message whose payloads are all in the clear (or an already sealed SK)."""
    w = Writer()
    first = msg.payloads[0].TYPE if msg.payloads else PayloadType.NONE
    push_header(w, msg, first)
    push_chain(w, msg.payloads, PayloadType.NONE)
    data = bytearray(w.getvalue())
    data[24:28] = len(data).to_bytes(4, "big")
    return bytes(data)


def encode_payloads(payloads: list[Payload] | tuple[Payload, ...]) -> bytes:
    if not payloads:
        return b""  # an empty INFORMATIONAL (a liveness check, §2.4)
    w = Writer()
    push_chain(w, payloads, PayloadType.NONE)
    return w.getvalue()


class SkCrypter(Protocol):
    """What the wire layer needs from ``crypto.sk.SkCrypter``."""

    @property
    def iv_size(self) -> int: ...

    def sealed_length(self, plaintext_len: int) -> int: ...

    def seal(self, aad: bytes, plaintext: bytes, iv: bytes) -> bytes: ...

    def open(self, aad: bytes, body: bytes) -> bytes: ...


def encode_encrypted(
    msg: Message,
    inner: list[Payload] | tuple[Payload, ...],
    crypter: SkCrypter,
    iv: bytes,
    plaintext: bytes | None = None,
) -> bytes:
    """Encode ``msg`` with ``inner`` payloads sealed in a trailing SK payload (§3.14);
    ``plaintext``: ``inner`` already encoded, if the caller has it."""
    if plaintext is None:
        plaintext = encode_payloads(inner)
    first_inner = inner[0].TYPE if inner else PayloadType.NONE
    body_len = crypter.sealed_length(len(plaintext))
    if not msg.payloads and len(msg.spi_i) == len(msg.spi_r) == 8:
        # Nothing before SK (every message we protect): header and SK header in one go.
        aad = _HEADER.pack(
            msg.spi_i, msg.spi_r, PayloadType.SK, msg.version, msg.exchange, msg.flags,
            msg.message_id, HEADER_SIZE + 4 + body_len,
        ) + _GENERIC.pack(first_inner, 0, 4 + body_len)  # fmt: skip
        return aad + crypter.seal(aad, plaintext, iv)
    w = Writer()
    first = msg.payloads[0].TYPE if msg.payloads else PayloadType.SK
    push_header(w, msg, first)
    push_chain(w, msg.payloads, PayloadType.SK)
    w.u8(first_inner)
    w.u8(0)
    w.u16(4 + body_len)
    aad = bytearray(w.getvalue())
    aad[24:28] = (len(aad) + body_len).to_bytes(4, "big")
    return bytes(aad) + crypter.seal(bytes(aad), plaintext, iv)


def open_encrypted(
    data: bytes,
    msg: Message,
    crypter: SkCrypter,
    decode: Callable[[bytes, PayloadType], list[Payload]] | None = None,
) -> list[Payload]:
    """Verify and decrypt the SK payload of ``msg`` (decoded from ``data``); ``decode``
    decodes the plaintext chain (default ``decode_payloads``).

    Raises the crypter's error when the ICV does not verify, DecodeError when the
    decrypted payload chain is malformed.
    """
    sk = msg.encrypted
    if not isinstance(sk, EncryptedPayload):
        raise DecodeError(HEADER_SIZE, "message has no SK payload")
    body_at = len(data) - len(sk.body)
    plaintext = crypter.open(data[:body_at], sk.body)
    return (decode or decode_payloads)(plaintext, sk.first_inner)
