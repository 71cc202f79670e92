"""An IKE message whose only payload is SK (every protected message we get) decodes the
same whatever its SK length field says: a wrong length is a DecodeError (RFC 7296 §3.2,
§3.14), never a payload cut at the wrong place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ikepulse.wire.buffer import DecodeError
from ikepulse.wire.enums import ExchangeType, PayloadType
from ikepulse.wire.message import FLAG_INITIATOR, Message, decode_message, encode_message
from ikepulse.wire.payloads import EncryptedPayload


@given(st.binary(max_size=64), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_sk_length_field_must_cover_the_rest_of_the_datagram(body, inner, length):
    sk = EncryptedPayload(PayloadType(inner), body)
    msg = Message(b"A" * 8, b"B" * 8, ExchangeType.INFORMATIONAL, FLAG_INITIATOR, 7, (sk,))
    data = bytearray(encode_message(msg))
    assert decode_message(bytes(data)) == msg
    data[30:32] = length.to_bytes(2, "big")
    if length == 4 + len(body):
        assert decode_message(bytes(data)) == msg
    else:
        with pytest.raises(DecodeError):
            decode_message(bytes(data))


@given(st.binary(max_size=3))
def test_a_cut_sk_header_is_a_decode_error(tail):
    msg = Message(b"A" * 8, b"B" * 8, ExchangeType.INFORMATIONAL, 0, 1, ())
    data = bytearray(encode_message(msg) + tail)
    data[16] = PayloadType.SK  # the header names an SK payload that is not all there
    data[24:28] = len(data).to_bytes(4, "big")
    with pytest.raises(DecodeError):
        decode_message(bytes(data))
