"""The EAP messages IKEv2 carries in its EAP payload (RFC 7296 §3.16): EAP-Identity
(RFC 3748 §5.1), Nak (§5.3) and EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2 §2).

``EapPayload.data`` starts at the Type octet; ``pull_eap`` decodes it to one of the frozen
dataclasses below and ``eap_payload`` encodes one back. The MS-CHAPv2 packets
after the Type octet read: OpCode, MS-CHAPv2-ID, MS-Length (the EAP length less 5), then
for Challenge and Response a Value-Size octet, the value and a name; for Success and Failure
requests a text message; Success and Failure responses are the OpCode alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .buffer import DecodeError, Reader, Writer
from .enums import EapCode, IanaEnum
from .payloads import EapPayload


class EapType(IanaEnum):
    """RFC 3748 §5 method types (IANA "EAP Method Types")."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    TLS = 13
    MSCHAPV2 = 26


class MsChapV2Op(IanaEnum):
    """draft-kamath-pppext-eap-mschapv2 §2 OpCodes."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


CHALLENGE_SIZE = 16
RESPONSE_SIZE = 49
"""Peer-Challenge (16), Reserved (8), NT-Response (24), Flags (1) (RFC 2759 §4)."""


@dataclass(frozen=True, slots=True)
class EapIdentity:
    """Request (``identity`` empty or a prompt) or Response (the peer's identity)."""

    identity: bytes = b""


@dataclass(frozen=True, slots=True)
class EapNak:
    """A Response refusing the requested method, listing the types the peer would accept."""

    desired: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MsChapV2Challenge:
    ms_id: int
    challenge: bytes
    name: bytes


@dataclass(frozen=True, slots=True)
class MsChapV2Response:
    ms_id: int
    peer_challenge: bytes
    nt_response: bytes
    name: bytes
    flags: int = 0


@dataclass(frozen=True, slots=True)
class MsChapV2Result:
    """Success or Failure: a request carries ``message`` (``S=...`` or ``E=... R=...``),
    a response is the OpCode alone (``ms_id`` and ``message`` empty)."""

    op: MsChapV2Op
    ms_id: int = 0
    message: bytes = b""


@dataclass(frozen=True, slots=True)
class EapOther:
    """A method this module does not decode, kept as its Type and type-data."""

    type: EapType
    data: bytes


EapMessage = EapIdentity | EapNak | MsChapV2Challenge | MsChapV2Response | MsChapV2Result | EapOther


def pull_eap(payload: EapPayload) -> EapMessage | None:
    """The method message of a Request or Response; None for Success and Failure (which
    carry no Type). Raises DecodeError for a truncated or inconsistent MS-CHAPv2 packet."""
    if payload.code not in (EapCode.REQUEST, EapCode.RESPONSE):
        return None
    r = Reader(payload.data)
    kind = EapType(r.u8("EAP type"))
    if kind == EapType.IDENTITY:
        return EapIdentity(r.rest())
    if kind == EapType.NAK:
        return EapNak(tuple(r.rest()))
    if kind == EapType.MSCHAPV2:
        return _pull_mschapv2(r, payload.code == EapCode.REQUEST)
    return EapOther(kind, r.rest())


def _pull_mschapv2(r: Reader, request: bool) -> EapMessage:
    op = MsChapV2Op(r.u8("MS-CHAPv2 OpCode"))
    if op in (MsChapV2Op.SUCCESS, MsChapV2Op.FAILURE) and not request:
        return MsChapV2Result(op)
    ms_id = r.u8("MS-CHAPv2-ID")
    length = r.u16("MS-Length")
    if length != 4 + r.remaining:
        raise r.fail(f"MS-Length {length} disagrees with the EAP length ({4 + r.remaining})")
    if op in (MsChapV2Op.SUCCESS, MsChapV2Op.FAILURE):
        return MsChapV2Result(op, ms_id, r.rest())
    size = r.u8("MS-CHAPv2 Value-Size")
    expected = CHALLENGE_SIZE if op == MsChapV2Op.CHALLENGE else RESPONSE_SIZE
    if op not in (MsChapV2Op.CHALLENGE, MsChapV2Op.RESPONSE):
        raise r.fail(f"MS-CHAPv2 OpCode {op.name} is not supported")
    if size != expected:
        raise r.fail(f"MS-CHAPv2 {op.name} Value-Size {size}, expected {expected}")
    value = r.bytes(size, "MS-CHAPv2 value")
    if op == MsChapV2Op.CHALLENGE:
        return MsChapV2Challenge(ms_id, value, r.rest())
    return MsChapV2Response(ms_id, value[:16], value[24:48], r.rest(), value[48])


def eap_payload(code: EapCode, identifier: int, message: EapMessage | None = None) -> EapPayload:
    """An EAP payload carrying ``message`` (None for Success and Failure)."""
    if message is None:
        return EapPayload(code, identifier)
    w = Writer()
    if isinstance(message, EapIdentity):
        w.u8(EapType.IDENTITY)
        w.bytes(message.identity)
    elif isinstance(message, EapNak):
        w.u8(EapType.NAK)
        w.bytes(bytes(message.desired))
    elif isinstance(message, EapOther):
        w.u8(message.type)
        w.bytes(message.data)
    else:
        w.u8(EapType.MSCHAPV2)
        _push_mschapv2(w, message, code == EapCode.REQUEST)
    return EapPayload(code, identifier, w.getvalue())


def _push_mschapv2(w: Writer, message: EapMessage, request: bool) -> None:
    if isinstance(message, MsChapV2Result) and not request:
        w.u8(message.op)  # a Success or Failure Response
        return
    if isinstance(message, MsChapV2Challenge):
        op, body = MsChapV2Op.CHALLENGE, bytes([CHALLENGE_SIZE]) + message.challenge
        body += message.name
    elif isinstance(message, MsChapV2Response):
        value = message.peer_challenge + bytes(8) + message.nt_response + bytes([message.flags])
        op, body = MsChapV2Op.RESPONSE, bytes([RESPONSE_SIZE]) + value + message.name
    elif isinstance(message, MsChapV2Result):
        op, body = message.op, message.message
    else:
        raise TypeError(f"not an EAP message: {message!r}")
    w.u8(op)
    w.u8(message.ms_id)
    w.u16(4 + len(body))
    w.bytes(body)


__all__ = [
    "CHALLENGE_SIZE",
    "DecodeError",
    "EapIdentity",
    "EapMessage",
    "EapNak",
    "EapOther",
    "EapType",
    "MsChapV2Challenge",
    "MsChapV2Op",
    "MsChapV2Response",
    "MsChapV2Result",
    "eap_payload",
    "pull_eap",
]
