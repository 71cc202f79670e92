"""EAP configuration keys (auth, eap_id, [secrets.eap-*], %any) and the EAP message codec
(RFC 3748 §5, draft-kamath-pppext-eap-mschapv2 §2)."""

from __future__ import annotations

import pytest

from ikepulse.config.loader import ConfigError, parse_config
from ikepulse.core.connection import AuthClass, Identity
from ikepulse.wire.buffer import DecodeError
from ikepulse.wire.eap import (
    EapIdentity,
    EapNak,
    MsChapV2Challenge,
    MsChapV2Op,
    MsChapV2Response,
    MsChapV2Result,
    eap_payload,
    pull_eap,
)
from ikepulse.wire.enums import EapCode
from ikepulse.wire.payloads import EapPayload

GATEWAY = """
[connections.rw]
local = { auth = "psk", id = "gw.example" }
remote = { auth = "eap-mschapv2", id = "%any", eap_id = "%any" }
[secrets.gw]
id = "gw.example"
secret = "gateway key"
[secrets.eap-carol]
id = "carol"
secret = "carol's password"
[secrets.eap-dave]
ids = ["dave", "gw.example"]
secret = "dave's password"
"""


def test_gateway_keys():
    (rw,) = parse_config(GATEWAY).connections
    assert rw.local_auth is AuthClass.PSK and rw.remote_auth is AuthClass.EAP_MSCHAPV2
    assert rw.remote_id is None and rw.remote_eap_id is None and rw.ask_eap_identity
    assert rw.eap_timeout == 30.0
    assert rw.shared_key(Identity.parse("anyone")) == b"gateway key"
    assert rw.credentials.eap_password(Identity.parse("carol")) == b"carol's password"
    assert rw.credentials.eap_password(Identity.parse("dave")) == b"dave's password"
    assert rw.credentials.eap_password(Identity.parse("gw.example"), rw.local_id) is None
    assert rw.credentials.eap_password(Identity.parse("mallory")) is None


def test_without_eap_id_no_identity_round():
    (rw,) = parse_config(GATEWAY.replace(', eap_id = "%any"', "")).connections
    assert not rw.ask_eap_identity


def test_an_eap_client_needs_its_password():
    text = """
[connections.c]
local = { auth = "eap-mschapv2", id = "laptop", eap_id = "erin" }
remote = { auth = "psk", id = "gw.example" }
[secrets.gw]
ids = ["gw.example"]
secret = "k"
"""
    with pytest.raises(
        ConfigError, match=r"connections\.c: no \[secrets\.eap-\*\] entry with id erin"
    ):
        parse_config(text, "c.toml")
    (c,) = parse_config(text + '[secrets.eap-erin]\nid = "erin"\nsecret = "pw"\n').connections
    assert c.local_eap_id == Identity.parse("erin")


def test_an_eap_secret_needs_a_user():
    with pytest.raises(ConfigError, match=r"secrets\.eap-x: an EAP secret needs id"):
        parse_config(GATEWAY + '[secrets.eap-x]\nsecret = "pw"\n', "g.toml")


def test_eap_on_both_ends_is_refused():
    text = GATEWAY.replace('auth = "psk", id = "gw.example"', 'auth = "eap-mschapv2", id = "gw"')
    with pytest.raises(ConfigError, match="cannot both be EAP methods"):
        parse_config(text, "g.toml")


def test_unknown_auth_method_is_named():
    with pytest.raises(ConfigError, match=r"remote\.auth: auth = 'eap-tls' is not supported"):
        parse_config(GATEWAY.replace('"eap-mschapv2"', '"eap-tls"'), "g.toml")


def test_a_group_key_listing_only_the_gateway_serves_any_peer():
    text = GATEWAY.replace('auth = "eap-mschapv2", ', "").replace(', eap_id = "%any"', "")
    (rw,) = parse_config(text).connections
    assert rw.psk == b"gateway key"


MESSAGES = [
    (EapCode.REQUEST, EapIdentity()),
    (EapCode.RESPONSE, EapIdentity(b"carol")),
    (EapCode.RESPONSE, EapNak((4, 13))),
    (EapCode.REQUEST, MsChapV2Challenge(7, bytes(range(16)), b"gw.example")),
    (EapCode.RESPONSE, MsChapV2Response(7, b"p" * 16, b"n" * 24, b"carol")),
    (EapCode.REQUEST, MsChapV2Result(MsChapV2Op.SUCCESS, 7, b"S=" + b"A" * 40 + b" M=hi")),
    (EapCode.RESPONSE, MsChapV2Result(MsChapV2Op.SUCCESS)),
    (EapCode.REQUEST, MsChapV2Result(MsChapV2Op.FAILURE, 7, b"E=691 R=0 V=3")),
    (EapCode.RESPONSE, MsChapV2Result(MsChapV2Op.FAILURE)),
]


@pytest.mark.parametrize(("code", "message"), MESSAGES)
def test_codec_round_trip(code, message):
    payload = eap_payload(code, 42, message)
    assert pull_eap(payload) == message
    assert payload.identifier == 42


def test_mschapv2_response_layout():
    data = eap_payload(EapCode.RESPONSE, 1, MESSAGES[4][1]).data
    # Type 26, OpCode 2, MS-CHAPv2-ID 7, MS-Length = EAP length - 5, Value-Size 49
    assert data[:5] == bytes([26, 2, 7, 0, 4 + 1 + 49 + 5]) and data[5] == 49
    assert data[6 + 16 : 6 + 24] == bytes(8) and data[6 + 48] == 0


def test_success_and_failure_carry_no_method():
    assert pull_eap(EapPayload(EapCode.SUCCESS, 3)) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no Type
        bytes([26, 1, 7, 0, 99, 16]) + bytes(16),  # MS-Length disagrees
        bytes([26, 1, 7, 0, 5, 8]) + bytes(1),  # Value-Size 8 for a challenge
        bytes([26, 1, 7, 0, 20, 16]) + bytes(4),  # challenge cut short
        bytes([26, 7, 7, 0, 4]),  # change-password is not supported
    ],
)
def test_malformed_eap_is_a_decode_error(data):
    with pytest.raises(DecodeError):
        pull_eap(EapPayload(EapCode.REQUEST, 1, data))


def _server(ask_identity=False):
    import random

    from ikepulse.core.eap import EapServer

    passwords = {Identity.parse("carol"): b"pw"}
    return EapServer(
        random.Random(3), b"gw", passwords.get, Identity.parse("carol"), ask_identity, None
    )


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (lambda first: EapPayload(EapCode.RESPONSE, first.identifier, b""), "malformed EAP"),
        (lambda first: EapPayload(EapCode.RESPONSE, first.identifier + 1, b"\x01x"), "does not"),
        (lambda first: eap_payload(EapCode.RESPONSE, first.identifier, EapNak((13,))), "refuses"),
        (lambda first: EapPayload(EapCode.SUCCESS, first.identifier), "does not answer"),
        (
            lambda first: eap_payload(
                EapCode.RESPONSE, first.identifier, MsChapV2Result(MsChapV2Op.SUCCESS)
            ),
            "unexpected EAP message",
        ),
    ],
)
def test_the_gateway_refuses_hostile_eap_cleanly(reply, reason):
    from ikepulse.core.errors import AuthenticationFailed

    server = _server()
    first = server.start()
    with pytest.raises(AuthenticationFailed, match=reason):
        server.process(reply(first))
    assert server.msk is None and not server.succeeded
