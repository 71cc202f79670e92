"""An IKE SA's kept inner chains (core.repeats): the same bytes and payloads as encoding and
decoding each message, repeated or not, and the same DecodeError for hostile plaintext."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ikepulse.core.repeats import LIMIT, Repeats
from ikepulse.wire.buffer import DecodeError
from ikepulse.wire.enums import NotifyType, PayloadType
from ikepulse.wire.message import decode_payloads, encode_payloads
from ikepulse.wire.payloads import DeletePayload, NotifyPayload, VendorPayload

NATD = [
    NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, bytes(range(20))),
    NotifyPayload(NotifyType.NAT_DETECTION_DESTINATION_IP, bytes(range(20, 40))),
]
chains = st.lists(
    st.sampled_from(
        [
            [],
            NATD,
            NATD[:1],
            [VendorPayload(b"x" * (LIMIT + 1))],
            [DeletePayload(3, (b"abcd",))],
            [NotifyPayload(NotifyType.COOKIE2, b"c" * 16)],
        ]
    ),
    max_size=12,
)


@given(chains)
def test_encode_is_encode_payloads_repeated_or_not(sequence):
    repeats = Repeats()
    for payloads in sequence:
        assert repeats.encode(list(payloads)) == encode_payloads(payloads)


@given(chains)
def test_decode_is_decode_payloads_repeated_or_not(sequence):
    repeats = Repeats()
    for payloads in sequence:
        first = payloads[0].TYPE if payloads else PayloadType.NONE
        decoded = repeats.decode(encode_payloads(payloads), first)
        assert decoded == decode_payloads(encode_payloads(payloads), first) == list(payloads)


@given(st.lists(st.tuples(st.binary(max_size=40), st.sampled_from(list(PayloadType))), max_size=8))
def test_hostile_plaintext_fails_alike_every_time(inputs):
    repeats = Repeats()
    for plaintext, first in inputs * 2:  # each one twice: a failure is never remembered
        try:
            expected = decode_payloads(plaintext, first)
        except DecodeError:
            with pytest.raises(DecodeError):
                repeats.decode(plaintext, first)
        else:
            assert repeats.decode(plaintext, first) == expected


def test_the_same_plaintext_under_another_first_type_is_decoded_again():
    repeats = Repeats()
    plaintext = encode_payloads(NATD)
    assert repeats.decode(plaintext, PayloadType.NOTIFY) == NATD
    with pytest.raises(DecodeError):
        repeats.decode(plaintext, PayloadType.DELETE)  # a Delete body of this size is malformed
