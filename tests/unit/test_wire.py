"""Codec round trips for every payload, and decoding hostile bytes (RFC 7296 §3)."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikepulse.wire.buffer import DecodeError
from ikepulse.wire.enums import (
    AuthMethod,
    CertEncoding,
    CfgType,
    ConfigAttr,
    DhId,
    EapCode,
    ExchangeType,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
    TransformAttr,
    TransformType,
)
from ikepulse.wire.message import (
    FLAG_INITIATOR,
    Message,
    decode_message,
    decode_payloads,
    encode_message,
    encode_payloads,
)
from ikepulse.wire.payloads import (
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
    UnknownPayload,
    VendorPayload,
)
from ikepulse.wire.rules import CriticalPayloadUnknown, RuleViolation, check_rules
from ikepulse.wire.sa import Proposal, SaPayload, Transform, TransformAttribute
from ikepulse.wire.traffic_selectors import TrafficSelector, TsiPayload, TsrPayload

data = st.binary(max_size=64)
u8, u16 = st.integers(0, 255), st.integers(0, 0xFFFF)


def enum_of(cls, bits=8):
    return st.one_of(st.sampled_from(list(cls)), st.integers(0, (1 << bits) - 1).map(cls))


attribute = st.one_of(
    st.builds(TransformAttribute, enum_of(TransformAttr, 15), u16),
    st.builds(TransformAttribute, enum_of(TransformAttr, 15), data),
)
transform = st.builds(
    lambda t, i, attrs: Transform(
        TransformType(t), Transform.make(TransformType(t), i).id, tuple(attrs)
    ),
    st.integers(1, 6),
    u16,
    st.lists(attribute, max_size=3),
)
proposal = st.builds(
    lambda n, p, spi, ts: Proposal(n, p, spi, tuple(ts)),
    u8,
    enum_of(ProtocolId),
    st.sampled_from([b"", b"\x01\x02\x03\x04", bytes(range(8))]),
    st.lists(transform, max_size=6),
)
ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
selector = st.one_of(
    *(st.builds(TrafficSelector, addr, addr, u8, u16, u16) for addr in (ipv4, ipv6))
)
spi4 = st.binary(min_size=4, max_size=4)
PAYLOADS = {
    PayloadType.SA: st.builds(
        lambda ps: SaPayload(tuple(ps)), st.lists(proposal, min_size=1, max_size=3)
    ),
    PayloadType.KE: st.builds(KePayload, enum_of(DhId, 16), data),
    PayloadType.IDI: st.builds(IdiPayload, enum_of(IdType), data),
    PayloadType.IDR: st.builds(IdrPayload, enum_of(IdType), data),
    PayloadType.CERT: st.builds(CertPayload, enum_of(CertEncoding), data),
    PayloadType.CERTREQ: st.builds(CertreqPayload, enum_of(CertEncoding), data),
    PayloadType.AUTH: st.builds(AuthPayload, enum_of(AuthMethod), data),
    PayloadType.NONCE: st.builds(NoncePayload, data),
    PayloadType.NOTIFY: st.builds(
        NotifyPayload,
        enum_of(NotifyType, 16),
        data,
        enum_of(ProtocolId),
        st.sampled_from([b"", b"abcd"]),
    ),
    PayloadType.DELETE: st.one_of(
        st.builds(DeletePayload, enum_of(ProtocolId), st.lists(spi4, max_size=4).map(tuple)),
    ),
    PayloadType.VENDOR: st.builds(VendorPayload, data),
    PayloadType.TSI: st.builds(lambda s: TsiPayload(tuple(s)), st.lists(selector, max_size=3)),
    PayloadType.TSR: st.builds(lambda s: TsrPayload(tuple(s)), st.lists(selector, max_size=3)),
    PayloadType.CP: st.builds(
        lambda t, attrs: CpPayload(t, tuple(attrs)),
        enum_of(CfgType),
        st.lists(st.builds(ConfigAttribute, enum_of(ConfigAttr, 15), data), max_size=3),
    ),
    PayloadType.EAP: st.builds(EapPayload, enum_of(EapCode), u8, data),
}
any_payload = st.one_of(
    *PAYLOADS.values(),
    st.builds(UnknownPayload, st.integers(54, 255).map(PayloadType), st.booleans(), data),
)


def test_every_payload_type_has_a_strategy():
    from ikepulse.wire.payloads import PAYLOAD_CLASSES

    assert set(PAYLOAD_CLASSES) == set(PAYLOADS)


@given(st.lists(any_payload, max_size=6))
def test_payload_chain_round_trip(payloads):
    encoded = encode_payloads(payloads)
    first = payloads[0].TYPE if payloads else PayloadType.NONE
    assert decode_payloads(encoded, first) == payloads
    assert encode_payloads(decode_payloads(encoded, first)) == encoded


@given(
    st.lists(any_payload, max_size=4),
    st.binary(max_size=48),
    u8,
    st.sampled_from([EncryptedPayload, EncryptedFragmentPayload]),
)
def test_message_with_encrypted_payload_round_trip(outer, body, inner_type, kind):
    sk = (
        EncryptedPayload(PayloadType(inner_type), body)
        if kind is EncryptedPayload
        else EncryptedFragmentPayload(PayloadType(inner_type), 1, 2, body)
    )
    msg = Message(b"A" * 8, b"B" * 8, ExchangeType.IKE_AUTH, FLAG_INITIATOR, 1, (*outer, sk))
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert encode_message(decode_message(data)) == data


def test_unknown_payload_reencodes_byte_for_byte():
    msg = Message(
        b"A" * 8,
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        FLAG_INITIATOR,
        0,
        (UnknownPayload(PayloadType(222), False, b"\x00\xffodd bytes"), NoncePayload(b"n" * 16)),
    )
    data = encode_message(msg)
    assert encode_message(decode_message(data)) == data
    assert decode_message(data).payloads[0].type.name == "UNKNOWN_222"


def test_unknown_enum_values_get_pseudo_members():
    assert NotifyType(40000).name == "UNKNOWN_40000"
    assert not NotifyType(40000).known and NotifyType.COOKIE.known
    assert TransformType(9).name == "UNKNOWN_9"


def _valid_message() -> bytes:
    sa = SaPayload(
        (
            Proposal(
                1,
                ProtocolId.IKE,
                b"",
                (
                    Transform.make(TransformType.ENCR, 20, 256),
                    Transform.make(TransformType.PRF, 5),
                    Transform.make(TransformType.DH, 31),
                ),
            ),
        )
    )
    msg = Message(
        b"A" * 8,
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        FLAG_INITIATOR,
        0,
        (
            sa,
            KePayload(DhId.CURVE25519, b"k" * 32),
            NoncePayload(b"n" * 32),
            NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, b"s" * 20),
            TsiPayload((TrafficSelector.from_network("2001:db8::/32"),)),
        ),
    )
    return encode_message(msg)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(blob):
    try:
        decode_message(blob)
    except DecodeError:
        pass


@settings(max_examples=1000)
@given(st.data())
def test_mutated_valid_message_raises_only_decode_error(draw):
    data = bytearray(_valid_message())
    for _ in range(draw.draw(st.integers(1, 4))):
        at = draw.draw(st.integers(0, len(data) - 1))
        data[at] = draw.draw(u8)
    cut = draw.draw(st.integers(0, len(data)))
    candidate = bytes(data[:cut])
    candidate = candidate[:24] + len(candidate).to_bytes(4, "big") + candidate[28:]
    try:
        decode_message(candidate)
    except DecodeError:
        pass


def test_every_truncation_fails_cleanly_with_offset():
    data = _valid_message()
    for cut in range(len(data)):
        truncated = data[:cut]
        if cut >= 28:  # keep the header length honest so the payloads are what fails
            truncated = truncated[:24] + cut.to_bytes(4, "big") + truncated[28:]
        try:
            decode_message(truncated)
        except DecodeError as exc:
            assert str(exc).startswith("offset ")
        else:
            raise AssertionError(f"truncation at {cut} decoded")


def test_payload_body_must_be_consumed_exactly():
    data = bytearray(_valid_message())
    ts_at = data.index(bytes([1, 0, 0, 0, 8]))  # TSi body: 1 selector, reserved, TS type 8
    data[ts_at] = 0  # announce no selectors: the selector bytes are left over
    try:
        decode_message(bytes(data))
    except DecodeError as exc:
        assert "unparsed bytes at the end of TSI payload" in str(exc)
    else:
        raise AssertionError("payload with leftover bytes decoded")


def _msg(exchange, payloads, response=False):
    flags = FLAG_INITIATOR | (0x20 if response else 0)
    return Message(b"A" * 8, b"B" * 8, exchange, flags, 0, tuple(payloads))


def test_rules_require_sa_ke_nonce_in_ike_sa_init():
    msg = _msg(ExchangeType.IKE_SA_INIT, [NoncePayload(b"n" * 16)])
    try:
        check_rules(msg)
    except RuleViolation as exc:
        assert "SA" in str(exc)
    else:
        raise AssertionError("IKE_SA_INIT without SA accepted")


def test_rules_accept_error_notify_alone():
    reply = _msg(
        ExchangeType.IKE_SA_INIT, [NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN)], response=True
    )
    check_rules(reply)


def test_rules_refuse_cleartext_payloads_after_ike_sa_init():
    msg = _msg(ExchangeType.INFORMATIONAL, [DeletePayload(ProtocolId.IKE)])
    try:
        check_rules(msg)
    except RuleViolation as exc:
        assert "without an SK payload" in str(exc)
    else:
        raise AssertionError("cleartext INFORMATIONAL accepted")


def test_rules_flag_unknown_critical_payload():
    msg = _msg(ExchangeType.IKE_SA_INIT, [UnknownPayload(PayloadType(77), True, b"")])
    try:
        check_rules(msg)
    except CriticalPayloadUnknown as exc:
        assert exc.payload_type == 77
    else:
        raise AssertionError("critical unknown payload accepted")


def error_notify() -> NotifyPayload:
    return NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN)


def _violation(msg, inner=()) -> RuleViolation:
    try:
        check_rules(msg, inner)
    except RuleViolation as exc:
        return exc
    raise AssertionError("message accepted")


def test_rules_report_the_first_violation_in_a_fixed_order():
    sk = EncryptedPayload(PayloadType.NONE, b"")
    critical = UnknownPayload(PayloadType(77), True, b"")
    two_deletes_outside = [DeletePayload(ProtocolId.IKE), DeletePayload(ProtocolId.IKE)]
    # An unknown critical payload (§2.5) comes before a payload outside SK...
    exc = _violation(_msg(ExchangeType.INFORMATIONAL, [*two_deletes_outside, sk]), [critical])
    assert isinstance(exc, CriticalPayloadUnknown) and exc.payload_type == 77
    # ...which comes before counts and payloads the exchange does not allow.
    inner = [NoncePayload(b"n" * 16), NoncePayload(b"n" * 16)]
    exc = _violation(_msg(ExchangeType.INFORMATIONAL, [*two_deletes_outside, sk]), inner)
    assert str(exc) == "DELETE payload outside SK"
    exc = _violation(_msg(ExchangeType.CREATE_CHILD_SA, [sk]), inner)
    assert str(exc) == "CREATE_CHILD_SA without a SA payload"  # the rules' order: SA first
    reply = _msg(ExchangeType.CREATE_CHILD_SA, [sk], response=True)
    exc = _violation(reply, [*inner, error_notify()])
    assert str(exc) == "2 NONCE payloads, at most 1"  # maximums hold in any case
    exc = _violation(_msg(ExchangeType.INFORMATIONAL, [sk]), inner)
    assert str(exc) == "NONCE payload not allowed in INFORMATIONAL"
    # A response with an error notify needs no minimums; a request always does.
    check_rules(reply, [error_notify()])
    exc = _violation(_msg(ExchangeType.CREATE_CHILD_SA, [sk]), [error_notify()])
    assert str(exc) == "CREATE_CHILD_SA without a SA payload"
