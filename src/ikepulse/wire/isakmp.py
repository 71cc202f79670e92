"""ISAKMP header and IKEv1 payload chain (RFC 2408 §3.1, §3.2; RFC 2409 §5.3 padding).

``decode_isakmp`` turns a datagram into an ``IsakmpMessage``; an encrypted body (E flag)
stays opaque until the SA decrypts it and calls ``decode_chain(..., padding=True)``. A
``PayloadChain`` keeps each payload's bytes as received, because the IKEv1 hashes cover
payload bodies and chain tails exactly as they were on the wire (RFC 2409 §5, §5.5, §5.7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .buffer import DecodeError, Reader, Writer
from .isakmp_enums import ExchangeV1, PayloadV1
from .isakmp_payloads import Payload, payload_type, pull_payload

FLAG_ENCRYPTED = 1
FLAG_COMMIT = 2
FLAG_AUTH_ONLY = 4
HEADER_SIZE = 28
MAJOR_VERSION = 1
VERSION = 0x10
"""Major 1, minor 0 (§3.1), what this codec sends."""
MAX_PAYLOADS = 64
"""More payloads in one chain is a DecodeError (nothing legitimate comes close)."""
_GENERIC = 4

P = TypeVar("P")


def isakmp_version(data: bytes) -> int | None:
    """The major version of an ISAKMP/IKE header (1 or 2), None below 28 bytes."""
    if len(data) < HEADER_SIZE:
        return None
    return data[17] >> 4


@dataclass(frozen=True, slots=True)
class PayloadChain:
    """Decoded payloads plus each one's exact wire bytes (generic header included)."""

    payloads: tuple[Payload, ...]
    raw: tuple[bytes, ...]

    def after(self, index: int) -> bytes:
        """The wire bytes of every payload after ``index`` (what QM HASH(1)/(2) and the
        Informational HASH(1) cover, RFC 2409 §5.5, §5.7)."""
        return b"".join(self.raw[index + 1 :])

    def body(self, index: int) -> bytes:
        """Payload ``index`` without its generic header (SAi_b, IDii_b, Ni_b; §5)."""
        return self.raw[index][_GENERIC:]

    def first(self, cls: type[P]) -> P | None:
        return next((p for p in self.payloads if isinstance(p, cls)), None)

    def all(self, cls: type[P]) -> list[P]:
        return [p for p in self.payloads if isinstance(p, cls)]

    def index(self, cls: type) -> int | None:
        """Position of the first payload of ``cls`` (for ``after``/``body``)."""
        return next((i for i, p in enumerate(self.payloads) if isinstance(p, cls)), None)


@dataclass(frozen=True, slots=True)
class IsakmpMessage:
    """One IKEv1 message; ``chain`` is None when the body is encrypted (E flag)."""

    icookie: bytes
    rcookie: bytes
    exchange: ExchangeV1
    flags: int
    message_id: int
    chain: PayloadChain | None = None
    first_payload: int = 0
    encrypted: bytes = b""

    @property
    def is_encrypted(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED)

    @property
    def payloads(self) -> tuple[Payload, ...]:
        return self.chain.payloads if self.chain is not None else ()


def decode_chain(first: int, body: bytes, *, padding: bool) -> PayloadChain:
    """Walk the generic headers from ``first`` through ``body`` (§3.2).

    With ``padding`` (a decrypted body, RFC 2409 §5.3) bytes after the last payload are
    ignored; otherwise they are a DecodeError. Raises only DecodeError.
    """
    r = Reader(body)
    payloads: list[Payload] = []
    raw: list[bytes] = []
    kind = first
    while kind != PayloadV1.NONE:
        if len(payloads) == MAX_PAYLOADS:
            raise r.fail(f"more than {MAX_PAYLOADS} payloads")
        at = r.offset
        next_kind = r.u8("next payload")
        r.u8("reserved")
        length = r.u16("payload length")
        name = PayloadV1(kind).name
        if length < _GENERIC:
            raise DecodeError(at, f"{name} payload length {length} is below 4")
        with r.restrict(length - _GENERIC, f"{name} payload"):
            payloads.append(pull_payload(kind, r))
        raw.append(body[at : at + length])
        kind = next_kind
    if r.remaining and not padding:
        raise r.fail(f"{r.remaining} bytes after the last payload")
    return PayloadChain(tuple(payloads), tuple(raw))


def decode_isakmp(data: bytes) -> IsakmpMessage:
    """Decode one IKEv1 datagram (no non-ESP marker); raises only DecodeError."""
    r = Reader(data)
    icookie, rcookie = r.bytes(8, "initiator cookie"), r.bytes(8, "responder cookie")
    first = r.u8("next payload")
    version = r.u8("version")
    exchange = ExchangeV1(r.u8("exchange type"))
    flags = r.u8("flags")
    message_id = r.u32("message id")
    at = r.offset
    length = r.u32("message length")
    if length != len(data):
        raise DecodeError(at, f"header says {length} bytes, datagram has {len(data)}")
    if version >> 4 != MAJOR_VERSION:
        raise DecodeError(17, f"major version {version >> 4}, expected {MAJOR_VERSION}")
    body = data[HEADER_SIZE:]
    if flags & FLAG_ENCRYPTED:
        return IsakmpMessage(icookie, rcookie, exchange, flags, message_id, None, first, body)
    chain = decode_chain(first, body, padding=False)
    return IsakmpMessage(icookie, rcookie, exchange, flags, message_id, chain, first)


def encode_chain(payloads: Sequence[Payload]) -> tuple[int, bytes]:
    """(first payload type, the payloads with their generic headers and next fields)."""
    w = Writer()
    for i, payload in enumerate(payloads):
        w.u8(payload_type(payloads[i + 1]) if i + 1 < len(payloads) else PayloadV1.NONE)
        w.u8(0)
        with w.block(2, header=_GENERIC):
            payload.push(w)
    first = payload_type(payloads[0]) if payloads else PayloadV1.NONE
    return first, w.getvalue()


def encode_isakmp(
    icookie: bytes,
    rcookie: bytes,
    exchange: ExchangeV1 | int,
    flags: int,
    message_id: int,
    *,
    payloads: Sequence[Payload] = (),
    encrypted: tuple[int, bytes] | None = None,
) -> bytes:
    """The datagram: cleartext ``payloads``, or ``encrypted=(first type, ciphertext)``,
    which needs FLAG_ENCRYPTED in ``flags`` (and no cleartext payloads)."""
    if len(icookie) != 8 or len(rcookie) != 8:
        raise ValueError("cookies are 8 bytes each")
    if encrypted is not None:
        if not flags & FLAG_ENCRYPTED or payloads:
            raise ValueError("an encrypted body needs FLAG_ENCRYPTED and no clear payloads")
        first, body = encrypted
    else:
        if flags & FLAG_ENCRYPTED:
            raise ValueError("FLAG_ENCRYPTED set but no encrypted body given")
        first, body = encode_chain(payloads)
    w = Writer()
    w.bytes(icookie)
    w.bytes(rcookie)
    w.u8(first)
    w.u8(VERSION)
    w.u8(exchange)
    w.u8(flags)
    w.u32(message_id)
    w.u32(HEADER_SIZE + len(body))
    w.bytes(body)
    return w.getvalue()
