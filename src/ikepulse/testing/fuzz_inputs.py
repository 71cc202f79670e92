"""Hostile input generators for the fuzz harness (families 1-4 of ``fuzz``).

Every generator takes the ``Arena`` (SPIs, message IDs, CHILD SA SPIs to aim at) and the
``Choices`` that drive it, and yields ``Hostile`` datagrams.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

from ..wire.buffer import Writer
from ..wire.enums import (
    AuthMethod,
    CertEncoding,
    CfgType,
    ConfigAttr,
    DhId,
    EapCode,
    EncrId,
    EsnId,
    ExchangeType,
    IdType,
    IntegId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
)
from ..wire.message import FLAG_INITIATOR, FLAG_RESPONSE, Message, encode_message
from ..wire.payloads import (
    AuthPayload,
    CertPayload,
    CertreqPayload,
    ConfigAttribute,
    CpPayload,
    DeletePayload,
    EapPayload,
    EncryptedFragmentPayload,
    EncryptedPayload,
    IdiPayload,
    IdrPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    UnknownPayload,
    VendorPayload,
)
from ..wire.sa import Proposal, SaPayload, Transform, TransformAttribute
from ..wire.traffic_selectors import TrafficSelector, TsiPayload, TsrPayload
from .fuzz import Arena, Choices, Hostile, pick
from .loopback import LEFT_NET, RIGHT_NET

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
EXCHANGES = (
    ExchangeType.IKE_SA_INIT,
    ExchangeType.IKE_AUTH,
    ExchangeType.CREATE_CHILD_SA,
    ExchangeType.INFORMATIONAL,
)
FLAGS = (FLAG_INITIATOR, 0, FLAG_INITIATOR | FLAG_RESPONSE, FLAG_RESPONSE, 0x10, 0xFF)
GROUPS = (1025, 31, 19, 14, 0, 1, 32, 0xFFFF)
SIZES = (0, 1, 15, 16, 32, 33, 64, 256, 257, 1500)
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x22, 0x2E, 0x35)
IKEV1_AND_UNASSIGNED = (1, 2, 4, 8, 13, 20, 21, 49, 50, 52, 54, 127, 128, 130, 131, 255)
NOTIFIES = (
    NotifyType.REKEY_SA,
    NotifyType.INVALID_KE_PAYLOAD,
    NotifyType.COOKIE,
    NotifyType.INVALID_IKE_SPI,
    NotifyType.INVALID_SPI,
    NotifyType.QUICK_CRASH_DETECTION,
    NotifyType.NAT_DETECTION_SOURCE_IP,
    NotifyType.NAT_DETECTION_DESTINATION_IP,
    NotifyType.INITIAL_CONTACT,
    NotifyType.USE_TRANSPORT_MODE,
    NotifyType.TEMPORARY_FAILURE,
    NotifyType.CHILD_SA_NOT_FOUND,
    NotifyType.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE,
    NotifyType.AUTHENTICATION_FAILED,
    NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
)


def one_input(arena: Arena, ch: Choices) -> Iterator[Hostile]:
    """One input of a family chosen by ``ch`` (weights 2:3:3:3:1)."""
    from .fuzz_cves import CASES

    draw = ch.below(12)
    if draw < 2:
        yield from random_datagram(arena, ch)
    elif draw < 5:
        yield from mutated_message(arena, ch)
    elif draw < 8:
        yield from structural(arena, ch)
    elif draw < 11:
        yield from authenticated(arena, ch)
    else:
        yield from pick(ch, CASES)(arena)


# --- family 1: random bytes ---------------------------------------------------------------


def random_datagram(arena: Arena, ch: Choices) -> Iterator[Hostile]:
    if ch.chance(0.5):
        size = ch.below(pick(ch, (40, 300, 2001)))
        yield Hostile(ch.bytes(size), "random", "bytes")
        return
    spi_i, spi_r = spis(arena, ch)
    header = (
        spi_i
        + spi_r
        + bytes([pick(ch, (ch.below(256), 33, 41, 46, 53)), pick(ch, (0x20, ch.below(256)))])
        + bytes([pick(ch, (34, 35, 36, 37, ch.below(256))), pick(ch, FLAGS)])
        + message_id(arena, ch).to_bytes(4, "big")
    )
    body = ch.bytes(ch.below(200))
    length = 28 + len(body) if ch.chance(0.7) else ch.below(1 << 32)
    yield Hostile(header + length.to_bytes(4, "big") + body, "random", "header")


# --- family 2: mutated real messages ------------------------------------------------------


@cache
def captures() -> tuple[bytes, ...]:
    """strongSwan 5.9.8 messages recorded in tests/fixtures (none when not in a checkout)."""
    return tuple(p.read_bytes() for p in sorted(FIXTURES.glob("*/*/*.bin")))


def mutated_message(arena: Arena, ch: Choices) -> Iterator[Hostile]:
    seeds = captures() + tuple(arena.handshake)
    data = bytearray(pick(ch, seeds))
    if len(data) >= 16 and ch.chance(0.5):  # aim at the established SA
        data[:16] = b"".join(spis(arena, ch))
    for _ in range(1 + ch.below(4)):
        data = mutate(data, ch, seeds)
    if len(data) >= 28 and ch.chance(0.5):
        data[24:28] = len(data).to_bytes(4, "big")
    yield Hostile(bytes(data), "mutated", "capture")


def mutate(data: bytearray, ch: Choices, seeds: tuple[bytes, ...]) -> bytearray:
    """One bit flip, byte overwrite, truncation, extension, splice or duplication."""
    op = ch.below(6)
    at = ch.below(len(data) + 1)
    if op == 0 and at < len(data):
        data[at] ^= 1 << ch.below(8)
    elif op == 1 and at < len(data):
        data[at] = pick(ch, INTERESTING)
    elif op == 2:
        del data[at:]
    elif op == 3:
        data[at:at] = ch.bytes(1 + ch.below(64))
    elif op == 4:
        other = pick(ch, seeds)
        data = data[:at] + other[ch.below(len(other) + 1) :]
    elif op == 5:
        data[at:at] = data[at : at + 1 + ch.below(64)]
    return bytearray(data)


# --- family 3: structure-aware messages -----------------------------------------------------


def structural(arena: Arena, ch: Choices) -> Iterator[Hostile]:
    shape = ch.below(6)
    spi_i, spi_r = spis(arena, ch)
    exchange, flags, mid = pick(ch, EXCHANGES), pick(ch, FLAGS), message_id(arena, ch)
    payloads = [hostile_payload(arena, ch) for _ in range(ch.below(6))]
    if shape == 0:  # an IKE_SA_INIT request, one part of it hostile
        spi_r, exchange, flags, mid = bytes(8), ExchangeType.IKE_SA_INIT, FLAG_INITIATOR, 0
        payloads = init_payloads(ch)
        payloads[ch.below(3)] = hostile_payload(arena, ch)
    elif shape == 1:  # IKE_SA_INIT with odd SPIs or flags
        spi_i = pick(ch, (bytes(8), arena.spi_i, ch.bytes(8)))
        exchange, payloads = ExchangeType.IKE_SA_INIT, init_payloads(ch)
    elif shape == 2:  # a response to a request the target may never have sent
        spi_i, spi_r = arena.spi_i, arena.spi_r
        flags = FLAG_INITIATOR | FLAG_RESPONSE
        if arena.inflight is not None and ch.chance(0.7):
            mid = arena.inflight[1]
        if ch.chance(0.5):
            exchange = ExchangeType.IKE_SA_INIT
            payloads = init_payloads(ch) + payloads
    elif shape == 3:  # a forged SK or SKF payload for the established SA
        spi_i, spi_r, flags = arena.spi_i, arena.spi_r, pick(ch, (FLAG_INITIATOR, 0x28))
        payloads.append(forged_sk(ch))
    data = encode_message(Message(spi_i, spi_r, exchange, flags, mid, tuple(payloads)))
    if ch.chance(0.2):
        data = absurd_length(bytearray(data), ch)
    yield Hostile(data, "structural", f"shape {shape}")


def absurd_length(data: bytearray, ch: Choices) -> bytes:
    """One payload's (or the header's) length field set to something that cannot be."""
    offsets, at = [24], 28
    while at + 4 <= len(data) and len(offsets) < 16:
        offsets.append(at + 2)
        at += max(4, int.from_bytes(data[at + 2 : at + 4], "big"))
    at = pick(ch, offsets)
    size = 4 if at == 24 else 2
    value = pick(ch, (0, 3, 4, len(data), len(data) + 1, (1 << 8 * size) - 1))
    data[at : at + size] = value.to_bytes(size, "big")
    return bytes(data)


def spis(arena: Arena, ch: Choices) -> tuple[bytes, bytes]:
    return pick(
        ch,
        (
            (arena.spi_i, arena.spi_r),
            (arena.spi_i, bytes(8)),
            (ch.bytes(8), bytes(8)),
            (ch.bytes(8), ch.bytes(8)),
            (arena.spi_r, arena.spi_i),
        ),
    )


def message_id(arena: Arena, ch: Choices) -> int:
    inflight = arena.inflight[1] if arena.inflight else 0
    return pick(ch, (arena.next_mid, inflight, 0, 1, arena.next_mid + 1, ch.below(1 << 32)))


def init_payloads(ch: Choices) -> list[Payload]:
    """SA, KE and Nonce of an IKE_SA_INIT request the target would accept."""
    return [
        SaPayload((ike_proposal(b""),)),
        KePayload(DhId.CURVE25519, ch.bytes(32)),
        NoncePayload(ch.bytes(32)),
    ]


def ike_proposal(spi: bytes) -> Proposal:
    return Proposal(
        1,
        ProtocolId.IKE,
        spi,
        (
            Transform.make(TransformType.ENCR, EncrId.AES_GCM_16, 256),
            Transform.make(TransformType.PRF, PrfId.HMAC_SHA2_256),
            Transform.make(TransformType.DH, DhId.CURVE25519),
        ),
    )


def esp_proposal(spi: bytes) -> Proposal:
    return Proposal(
        1,
        ProtocolId.ESP,
        spi,
        (
            Transform.make(TransformType.ENCR, EncrId.AES_GCM_16, 256),
            Transform.make(TransformType.DH, DhId.CURVE25519),
            Transform.make(TransformType.ESN, EsnId.NO_ESN),
        ),
    )


def forged_sk(ch: Choices) -> Payload:
    body = ch.bytes(pick(ch, (0, 8, 24, 40, 200)))
    if ch.chance(0.5):
        return EncryptedPayload(PayloadType(pick(ch, (0, 33, 41, 42))), body)
    number, total = pick(ch, ((1, 1), (1, 2), (2, 2), (0, 0), (3, 2), (1, 0xFFFF)))
    return EncryptedFragmentPayload(PayloadType(pick(ch, (0, 33))), number, total, body)


def hostile_payload(arena: Arena, ch: Choices) -> Payload:
    """Any payload, mostly well formed but with values a peer should never send."""
    kind = ch.below(18)
    data = ch.bytes(pick(ch, SIZES))
    if kind == 0:
        return SaPayload(tuple(hostile_proposal(arena, ch) for _ in range(1 + ch.below(3))))
    if kind == 1:
        return KePayload(DhId(pick(ch, GROUPS)), data)
    if kind == 2:
        return NoncePayload(data)
    if kind in (3, 4):
        return NotifyPayload(
            NotifyType(pick(ch, NOTIFIES + (ch.below(1 << 16),))),
            data,
            ProtocolId(pick(ch, (0, 1, 2, 3, ch.below(256)))),
            child_spi(arena, ch),
        )
    if kind == 5:
        size = pick(ch, (4, 8, 0, 1))
        count = 1 + ch.below(3)
        chosen = [child_spi(arena, ch)[:size].ljust(size, b"\0") for _ in range(count)]
        return DeletePayload(ProtocolId(pick(ch, (0, 1, 2, 3, 200))), tuple(chosen))
    if kind == 6:
        id_type = IdType(pick(ch, (1, 2, 3, 5, 9, 10, 11, 13, 0, 255)))
        return pick(ch, (IdiPayload, IdrPayload))(id_type, data)
    if kind == 7:
        selectors = tuple(hostile_selector(ch) for _ in range(ch.below(4)))
        return pick(ch, (TsiPayload, TsrPayload))(selectors)
    if kind == 8:
        return AuthPayload(AuthMethod(pick(ch, (1, 2, 9, 14, 0, 255))), data)
    if kind == 9:
        return pick(ch, (CertPayload, CertreqPayload))(CertEncoding(ch.below(16)), data)
    if kind == 10:
        attributes = tuple(
            ConfigAttribute(ConfigAttr(ch.below(20)), ch.bytes(ch.below(20)))
            for _ in range(ch.below(4))
        )
        return CpPayload(CfgType(ch.below(6)), attributes)
    if kind == 11:
        return EapPayload(EapCode(ch.below(6)), ch.below(256), data)
    if kind == 12:
        return VendorPayload(data)
    if kind == 13:
        return forged_sk(ch)
    if kind in (14, 15):  # a type we do not know, critical or not
        return UnknownPayload(PayloadType(pick(ch, IKEV1_AND_UNASSIGNED)), ch.chance(0.5), data)
    known = PayloadType(33 + ch.below(16))  # a known type with a body that is not one
    return UnknownPayload(known, ch.chance(0.3), data)


def hostile_proposal(arena: Arena, ch: Choices) -> Proposal:
    protocol = ProtocolId(pick(ch, (1, 3, 2, 0, ch.below(256))))
    spi = pick(ch, (b"", arena.child_spis[0], ch.bytes(8), ch.bytes(ch.below(32))))
    transforms = []
    for _ in range(ch.below(7)):
        ttype = TransformType(pick(ch, (1, 2, 3, 4, 5, ch.below(256))))
        tid = pick(ch, (EncrId.AES_GCM_16, PrfId.HMAC_MD5, IntegId.AES_XCBC_96, 1025, 0, 31))
        attributes = ()
        if ch.chance(0.3):
            value = pick(ch, (128, 256, 0, 1, 0xFFFF, ch.bytes(ch.below(8))))
            attributes = (TransformAttribute(pick(ch, (14, 0x7FFF, ch.below(1 << 15))), value),)
        transforms.append(Transform(ttype, int(tid), attributes))
    if ch.chance(0.4):
        return pick(ch, (ike_proposal, esp_proposal))(spi)
    return Proposal(pick(ch, (1, 0, 255)), protocol, spi, tuple(transforms))


def hostile_selector(ch: Choices) -> TrafficSelector:
    good = TrafficSelector.from_network(pick(ch, (LEFT_NET, RIGHT_NET, "0.0.0.0/0", "::/0")))
    start, end = pick(ch, ((good.start, good.end), (good.end, good.start)))
    ports = pick(ch, ((0, 65535), (65535, 0), (500, 500), (ch.below(1 << 16), 0)))
    return TrafficSelector(start, end, pick(ch, (0, 17, 255)), *ports)


def child_spi(arena: Arena, ch: Choices) -> bytes:
    ours, theirs = arena.child_spis
    return pick(ch, (ours, theirs, b"", ch.bytes(4), ch.bytes(8), ch.bytes(ch.below(40))))


# --- family 4: sealed with the honest peer's keys -------------------------------------------


def authenticated(arena: Arena, ch: Choices) -> Iterator[Hostile]:
    shape = ch.below(5)
    exchange = ExchangeType.CREATE_CHILD_SA
    extra = [hostile_payload(arena, ch) for _ in range(ch.below(3))]
    if shape == 0:  # a new or rekeyed CHILD SA, one part of it hostile
        payloads = child_payloads(arena, ch)
        if ch.chance(0.5):
            proto = ProtocolId(pick(ch, (3, 0, 1, 2, 255)))
            notify = NotifyPayload(NotifyType.REKEY_SA, b"", proto, child_spi(arena, ch))
            payloads.insert(0, notify)
        if ch.chance(0.7):
            payloads[ch.below(len(payloads))] = hostile_payload(arena, ch)
    elif shape == 1:  # an IKE SA rekey
        payloads = [
            SaPayload((ike_proposal(pick(ch, (ch.bytes(8), bytes(8), b"", ch.bytes(4)))),)),
            NoncePayload(ch.bytes(pick(ch, (32, 32, 0, 300)))),
            KePayload(DhId(pick(ch, (31, 31, 19, 1025))), ch.bytes(pick(ch, (32, 32, 0, 64)))),
        ] + extra
    elif shape == 2:  # deletes and notifies
        exchange = ExchangeType.INFORMATIONAL
        payloads = [hostile_payload(arena, ch) for _ in range(ch.below(4))]
    elif shape == 3:  # IKE_AUTH payloads, in IKE_AUTH or another exchange
        exchange = pick(ch, EXCHANGES[1:])
        payloads = (
            [
                IdiPayload(IdType.ID_FQDN, b"left.example"),
                IdrPayload(IdType.ID_FQDN, b"right.example"),
                AuthPayload(AuthMethod.SHARED_KEY_MIC, ch.bytes(32)),
            ]
            + child_payloads(arena, ch)[:1]
            + extra
        )
    else:
        exchange = ExchangeType(pick(ch, (37, 36, 35, 34, 43, ch.below(256))))
        payloads = [hostile_payload(arena, ch) for _ in range(ch.below(6))]
    response = arena.inflight is not None and ch.chance(0.15)
    if response:
        exchange = arena.inflight[0] if ch.chance(0.7) else exchange
    yield arena.sealed("authenticated", f"shape {shape}", exchange, payloads, response=response)


def child_payloads(arena: Arena, ch: Choices) -> list[Payload]:
    """SA, Nonce, KE, TSi, TSr of a CREATE_CHILD_SA request the target would accept."""
    return [
        SaPayload((esp_proposal(ch.bytes(4)),)),
        NoncePayload(ch.bytes(32)),
        KePayload(DhId.CURVE25519, ch.bytes(32)),
        TsiPayload((TrafficSelector.from_network(LEFT_NET),)),
        TsrPayload((TrafficSelector.from_network(RIGHT_NET),)),
    ]


def encode_body(payload: Payload) -> bytes:
    """A payload's body as the wire codec writes it."""
    w = Writer()
    payload.push(w)
    return w.getvalue()
