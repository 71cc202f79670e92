"""The IKEv1 (ISAKMP) codec: RFC 2408 §3, RFC 2407 §4, RFC 3947, strongSwan fragments."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ikepulse.cli.main import main
from ikepulse.wire.buffer import DecodeError
from ikepulse.wire.isakmp import (
    FLAG_ENCRYPTED,
    HEADER_SIZE,
    PayloadChain,
    decode_chain,
    decode_isakmp,
    encode_chain,
    encode_isakmp,
    isakmp_version,
)
from ikepulse.wire.isakmp_enums import (
    KEY_IKE,
    AuthMethodV1,
    EncapMode,
    EncrV1,
    EspIdV1,
    ExchangeV1,
    HashV1,
    IdV1,
    NotifyV1,
    PayloadV1,
    Phase1Attr,
    Phase2Attr,
    ProtocolV1,
)
from ikepulse.wire.isakmp_payloads import (
    CertReqV1,
    CertV1,
    DeleteV1,
    FragmentV1,
    HashV1Payload,
    IdV1Payload,
    KeV1,
    NatDV1,
    NatOaV1,
    NonceV1,
    NotifyV1Payload,
    SigV1,
    UnknownV1,
    VendorIdV1,
)
from ikepulse.wire.isakmp_sa import AttributeV1, ProposalV1, SaV1, TransformV1

IC, RC = bytes.fromhex("0102030405060708"), bytes.fromhex("a1a2a3a4a5a6a7a8")


def phase1_sa(proposals: int = 1) -> SaV1:
    attrs = (
        AttributeV1(Phase1Attr.ENCRYPTION, EncrV1.AES_CBC),
        AttributeV1(Phase1Attr.KEY_LENGTH, 256),
        AttributeV1(Phase1Attr.HASH, HashV1.SHA2_256),
        AttributeV1(Phase1Attr.AUTH_METHOD, AuthMethodV1.PSK),
        AttributeV1(Phase1Attr.GROUP, 14),
        AttributeV1(Phase1Attr.LIFE_DURATION, b"\x00\x01\x51\x80"),
    )
    transform = TransformV1(1, KEY_IKE, attrs)
    return SaV1(
        tuple(ProposalV1(n + 1, ProtocolV1.ISAKMP, b"", (transform,)) for n in range(proposals))
    )


def esp_sa() -> SaV1:
    attrs = (
        AttributeV1(Phase2Attr.ENCAP_MODE, EncapMode.UDP_TUNNEL),
        AttributeV1(Phase2Attr.AUTH_ALG, 5),
        AttributeV1(Phase2Attr.KEY_LENGTH, 128),
    )
    transforms = (TransformV1(1, EspIdV1.AES_CBC, attrs), TransformV1(2, EspIdV1.AES_GCM_16, ()))
    return SaV1((ProposalV1(1, ProtocolV1.ESP, b"\xc1\xc2\xc3\xc4", transforms),))


PAYLOADS = [
    phase1_sa(),
    esp_sa(),
    KeV1(bytes(range(128))),
    NonceV1(b"n" * 32),
    HashV1Payload(b"h" * 20),
    SigV1(b"s" * 64),
    VendorIdV1(b"\xaf\xca\xd7\x13"),
    IdV1Payload(IdV1.IPV4_ADDR, 17, 500, bytes([192, 0, 2, 1])),
    IdV1Payload(IdV1.FQDN, 0, 0, b"gw.example"),
    CertV1(4, b"\x30\x82cert"),
    CertReqV1(4, b""),
    NotifyV1Payload(NotifyV1.R_U_THERE, ProtocolV1.ISAKMP, IC + RC, b"\x00\x00\x00\x07"),
    NotifyV1Payload(NotifyV1.NO_PROPOSAL_CHOSEN, ProtocolV1.ESP),
    DeleteV1(ProtocolV1.ESP, (b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")),
    DeleteV1(ProtocolV1.ISAKMP, (IC + RC,)),
    DeleteV1(ProtocolV1.AH, (), spi_size=4),
    NatDV1(b"d" * 32),
    NatDV1(b"d" * 20, draft=True),
    NatOaV1(IdV1.IPV4_ADDR, bytes([10, 0, 0, 1])),
    NatOaV1(IdV1.IPV6_ADDR, bytes(16), draft=True),
    FragmentV1(3, 2, True, b"fragment data"),
    FragmentV1(3, 1, False, b""),
    UnknownV1(14, b"\x01\x00\x00\x00\x40\x0f\x00\x00"),
    UnknownV1(200, b""),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
def test_every_payload_round_trips(payload):
    data = encode_isakmp(IC, RC, ExchangeV1.MAIN, 0, 0, payloads=[payload, NonceV1(b"x")])
    msg = decode_isakmp(data)
    assert msg.payloads == (payload, NonceV1(b"x"))
    assert encode_isakmp(IC, RC, ExchangeV1.MAIN, 0, 0, payloads=msg.payloads) == data


def test_header_fields_and_the_first_payload_type_survive():
    data = encode_isakmp(IC, RC, ExchangeV1.QUICK, 0, 0xDEADBEEF, payloads=[NatDV1(b"h", True)])
    assert data[16] == PayloadV1.NAT_D_DRAFT and data[17] == 0x10
    msg = decode_isakmp(data)
    assert (msg.icookie, msg.rcookie, msg.exchange) == (IC, RC, ExchangeV1.QUICK)
    assert msg.message_id == 0xDEADBEEF and msg.first_payload == PayloadV1.NAT_D_DRAFT
    assert not msg.is_encrypted


def test_unknown_payload_and_unknown_enums_re_encode_byte_for_byte():
    body = bytes(range(7))
    first, chain = encode_chain([UnknownV1(77, body), VendorIdV1(b"v")])
    data = IC + RC + bytes([first, 0x10, 250, 0]) + bytes(4)
    data += (HEADER_SIZE + len(chain)).to_bytes(4, "big") + chain
    msg = decode_isakmp(data)
    assert msg.exchange.name == "UNKNOWN_250"
    assert msg.payloads[0] == UnknownV1(77, body)
    assert encode_isakmp(IC, RC, msg.exchange, 0, 0, payloads=msg.payloads) == data
    id_payload = decode_isakmp(
        encode_isakmp(IC, RC, 2, 0, 0, payloads=[IdV1Payload(IdV1(99), 0, 0, b"")])
    ).payloads[0]
    assert id_payload.id_type.name == "UNKNOWN_99"


def test_tv_and_tlv_attributes():
    transform = phase1_sa().proposals[0].transforms[0]
    assert transform.attr(Phase1Attr.ENCRYPTION) == AttributeV1(1, EncrV1.AES_CBC)
    assert transform.attr(Phase1Attr.LIFE_DURATION).number == 86400
    assert transform.attr(Phase1Attr.PRF) is None
    big = AttributeV1(Phase1Attr.LIFE_DURATION, 86400)
    sa = SaV1((ProposalV1(1, ProtocolV1.ISAKMP, b"", (TransformV1(1, 1, (big,)),)),))
    raw = encode_chain([sa])[1]
    assert raw.endswith(b"\x00\x0c\x00\x04\x00\x01\x51\x80")  # TLV, 4 bytes (strongSwan)
    decoded = decode_chain(PayloadV1.SA, raw, padding=False).payloads[0]
    attr = decoded.proposals[0].transforms[0].attributes[0]
    assert attr == AttributeV1(12, b"\x00\x01\x51\x80") and attr.number == 86400
    small = encode_chain(
        [SaV1((ProposalV1(1, 1, b"", (TransformV1(1, 1, (AttributeV1(12, 28800),)),)),))]
    )
    assert small[1].endswith(b"\x80\x0c\x70\x80")  # TV
    assert AttributeV1(2, 1 << 40).number == 1 << 40


def _header(length: int, first: int = PayloadV1.NONE, version: int = 0x10) -> bytes:
    return IC + RC + bytes([first, version, 2, 0]) + bytes(4) + length.to_bytes(4, "big")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_header(29), id="header-longer-than-datagram"),
        pytest.param(_header(28)[:27], id="truncated-header"),
        pytest.param(_header(27) + b"\x00", id="header-shorter-than-datagram"),
        pytest.param(_header(28, version=0x20), id="major-version-2"),
        pytest.param(_header(32, PayloadV1.VID) + bytes(4), id="zero-length-payload"),
        pytest.param(_header(33, PayloadV1.VID) + b"\0\0\0\4\0", id="byte-after-payloads"),
    ],
)
def test_header_errors(data):
    with pytest.raises(DecodeError):
        decode_isakmp(data)


def test_an_empty_payload_of_four_bytes_is_fine():
    data = _header(32, PayloadV1.VID) + b"\0\0\0\4"
    assert decode_isakmp(data).payloads == (VendorIdV1(b""),)


def test_isakmp_version_routes_1_and_2():
    assert isakmp_version(_header(28)) == 1
    assert isakmp_version(_header(28, version=0x20)) == 2
    assert isakmp_version(b"\x00" * 27) is None


def _vid_chain(length: int, body: bytes) -> bytes:
    return bytes([0, 0]) + length.to_bytes(2, "big") + body


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_vid_chain(0, b""), "zero-length generic payload"),
        (_vid_chain(3, b""), "length below the generic header"),
        (_vid_chain(10, b"abc"), "payload overruns the body"),
        (_vid_chain(6, b"ab") + b"\x00", "overlong: trailing byte"),
        (b"\x0d\x00", "truncated generic header"),
    ],
)
def test_chain_errors(body, why):
    with pytest.raises(DecodeError):
        decode_chain(PayloadV1.VID, body, padding=False)


def test_padding_allowed_only_when_asked():
    first, chain = encode_chain([HashV1Payload(b"h" * 20), DeleteV1(ProtocolV1.ESP, (b"spi!",))])
    padded = chain + bytes(16 - len(chain) % 16)
    with pytest.raises(DecodeError):
        decode_chain(first, padded, padding=False)
    assert decode_chain(first, padded, padding=True) == decode_chain(first, chain, padding=False)
    with pytest.raises(DecodeError):  # padding does not excuse a broken last payload
        decode_chain(first, chain[:-1], padding=True)


def _attributes(n: int) -> SaV1:
    transform = TransformV1(1, 1, (AttributeV1(1, 1),) * n)
    return SaV1((ProposalV1(1, 1, b"", (transform,)),))


@pytest.mark.parametrize(
    ("too_many", "just_enough"),
    [
        pytest.param([phase1_sa(65)], [phase1_sa(64)], id="proposals"),
        pytest.param([VendorIdV1(b"v")] * 65, [VendorIdV1(b"v")] * 64, id="payloads"),
        pytest.param([_attributes(65)], [_attributes(64)], id="attributes"),
    ],
)
def test_counts_are_bounded(too_many, just_enough):
    with pytest.raises(DecodeError):
        decode_isakmp(encode_isakmp(IC, RC, ExchangeV1.MAIN, 0, 0, payloads=too_many))
    msg = decode_isakmp(encode_isakmp(IC, RC, ExchangeV1.MAIN, 0, 0, payloads=just_enough))
    assert msg.payloads == tuple(just_enough)


def test_too_many_transforms_announced():
    raw = bytearray(encode_chain([esp_sa()])[1])
    raw[4 + 8 + 7] = 65
    with pytest.raises(DecodeError):
        decode_chain(PayloadV1.SA, bytes(raw), padding=False)


def test_substructure_lies_are_decode_errors():
    raw = bytearray(encode_chain([esp_sa()])[1])
    count_at = 4 + 8 + 7  # generic, DOI+situation, proposal header 4 + number/protocol/SPI size
    raw[count_at] = 3  # announces 3 transforms, holds 2
    with pytest.raises(DecodeError):
        decode_chain(PayloadV1.SA, bytes(raw), padding=False)
    raw[count_at] = 1  # announces 1, holds 2
    with pytest.raises(DecodeError):
        decode_chain(PayloadV1.SA, bytes(raw), padding=False)
    delete = bytearray(encode_chain([DeleteV1(ProtocolV1.ESP, (b"abcd",))])[1])
    delete[10:12] = (2).to_bytes(2, "big")  # two SPIs announced, one present
    with pytest.raises(DecodeError):
        decode_chain(PayloadV1.D, bytes(delete), padding=False)


def test_quick_mode_chain_after_and_body():
    id_ci = IdV1Payload(IdV1.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 1, 0, 0, 255, 255, 0, 0]))
    id_cr = IdV1Payload(IdV1.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 2, 0, 0, 255, 255, 0, 0]))
    payloads = [HashV1Payload(bytes(32)), esp_sa(), NonceV1(b"N" * 16), id_ci, id_cr]
    first, raw = encode_chain(payloads)
    chain = decode_chain(first, raw, padding=False)
    assert chain.payloads == tuple(payloads)
    assert b"".join(chain.raw) == raw
    hash_len = 4 + 32
    assert chain.after(0) == raw[hash_len:]  # HASH(1) covers everything after HASH
    assert chain.after(4) == b""
    nonce = chain.index(NonceV1)
    assert chain.body(nonce) == b"N" * 16  # Ni_b: the body without the generic header
    assert chain.body(chain.index(SaV1)) == encode_chain([esp_sa()])[1][4:]
    assert chain.first(IdV1Payload) == id_ci and chain.all(IdV1Payload) == [id_ci, id_cr]
    assert chain.first(KeV1) is None and chain.index(KeV1) is None
    assert isinstance(chain, PayloadChain)


def test_encrypted_message_keeps_the_body_opaque():
    body = bytes(range(48))
    data = encode_isakmp(IC, RC, ExchangeV1.MAIN, FLAG_ENCRYPTED, 0, encrypted=(PayloadV1.ID, body))
    msg = decode_isakmp(data)
    assert msg.is_encrypted and msg.chain is None and msg.payloads == ()
    assert (msg.first_payload, msg.encrypted) == (PayloadV1.ID, body)
    with pytest.raises(ValueError):
        encode_isakmp(IC, RC, ExchangeV1.MAIN, 0, 0, encrypted=(PayloadV1.ID, body))
    with pytest.raises(ValueError):
        encode_isakmp(IC, RC, ExchangeV1.MAIN, FLAG_ENCRYPTED, 0, payloads=[NonceV1(b"")])


def test_notify_error_and_status():
    assert NotifyV1.AUTHENTICATION_FAILED.is_error and NotifyV1(8000).is_error
    assert not NotifyV1.R_U_THERE.is_error and not NotifyV1.INITIAL_CONTACT.is_error


def test_delete_spis_must_share_a_size():
    with pytest.raises(ValueError):
        encode_chain([DeleteV1(ProtocolV1.ESP, (b"abcd", b"abc"))])


def _decode_cli(data: bytes) -> dict:
    result = CliRunner().invoke(main, ["decode", "--hex", "-"], input=data.hex())
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_decode_cli_describes_an_ikev1_main_mode_message():
    payloads = [phase1_sa(), VendorIdV1(b"\xaf\xca"), NatDV1(b"d" * 20, draft=True)]
    out = _decode_cli(encode_isakmp(IC, bytes(8), ExchangeV1.MAIN, 0, 0, payloads=payloads))
    assert out["exchange"] == "MAIN" and out["icookie"] == IC.hex() and out["flags"] == []
    assert [p["type"] for p in out["payloads"]] == ["SA", "VID", "NAT_D_DRAFT"]
    transform = out["payloads"][0]["proposals"][0]["transforms"][0]
    assert transform["transform_id"] == "KEY_IKE"
    attrs = {a["type"]: a["value"] for a in transform["attributes"]}
    assert attrs["ENCRYPTION"] == "AES_CBC" and attrs["HASH"] == "SHA2_256"
    assert attrs["AUTH_METHOD"] == "PSK" and attrs["GROUP"] == "MODP_2048"
    assert attrs["LIFE_DURATION"] == 86400


def test_decode_cli_names_phase2_attributes_and_encrypted_bodies():
    out = _decode_cli(encode_isakmp(IC, RC, ExchangeV1.QUICK, 0, 9, payloads=[esp_sa()]))
    transform = out["payloads"][0]["proposals"][0]["transforms"][0]
    assert out["payloads"][0]["proposals"][0]["protocol"] == "ESP"
    assert transform["transform_id"] == "AES_CBC"
    attrs = {a["type"]: a["value"] for a in transform["attributes"]}
    assert attrs == {"ENCAP_MODE": "UDP_TUNNEL", "AUTH_ALG": "HMAC_SHA2_256", "KEY_LENGTH": 128}
    sealed = encode_isakmp(
        IC, RC, ExchangeV1.INFORMATIONAL, FLAG_ENCRYPTED, 7, encrypted=(8, bytes(32))
    )
    out = _decode_cli(sealed)
    assert out["payloads"] == "<encrypted 32 bytes>" and out["flags"] == ["ENCRYPTED"]
    assert out["next_payload"] == "HASH"


def test_decode_cli_reports_a_malformed_ikev1_message():
    data = bytearray(encode_isakmp(IC, RC, ExchangeV1.MAIN, 0, 0, payloads=[NonceV1(b"n")]))
    data[HEADER_SIZE + 3] = 0  # zero-length generic payload
    result = CliRunner().invoke(main, ["decode", "--hex", "-"], input=bytes(data).hex())
    assert result.exit_code == 1 and "malformed" in result.output
