"""EAP-MSCHAPv2 road warriors (RFC 7296 §2.16) and wildcard identities, two ikepulse peers
in memory, configured from TOML as a user writes it.

client (initiator)                              gateway (responder)
IKE_AUTH 1  IDi SA TSi TSr  (no AUTH)        -->
            <-- IDr AUTH(PSK) EAP(Request/[Identity|MSCHAPv2 Challenge])
IKE_AUTH 2  EAP(Response) ...                -->
            <-- EAP(Request/MSCHAPv2 Success "S=...")
IKE_AUTH n  EAP(Response/MSCHAPv2 Success)   -->
            <-- EAP(Success)
IKE_AUTH    AUTH(MSK)                        -->
            <-- AUTH(MSK) SA TSi TSr
"""

from __future__ import annotations

import random

from ikepulse.config.loader import parse_config
from ikepulse.core.events import ChildSaInstalled, IkeSaEstablished, IkeSaFailed
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, Peer, run_until_idle
from ikepulse.wire.enums import ExchangeType, NotifyType
from ikepulse.wire.message import decode_message

GATEWAY = """
[connections.rw]
local = {{ auth = "psk", id = "gw.example" }}
remote = {{ auth = "eap-mschapv2", id = "%any"{eap_id} }}
eap_timeout = "10s"
dpd_delay = "0s"
[connections.rw.children.net]
local_ts = ["203.0.113.0/26"]
remote_ts = ["dynamic"]
[secrets.gw]
ids = ["gw.example"]
secret = "gateway-key-0123"
[secrets.eap-carol]
id = "carol"
secret = "carol's password"
"""

CLIENT = """
[connections.site]
local = {{ auth = "eap-mschapv2", id = "{ike_id}"{eap_id} }}
remote = {{ auth = "psk", id = "gw.example" }}
dpd_delay = "0s"
retransmit_tries = 2
retransmit_timeout = "1s"
[connections.site.children.net]
remote_ts = ["203.0.113.0/26"]
[secrets.gw]
ids = ["gw.example"]
secret = "gateway-key-0123"
[secrets.eap-me]
id = "{user}"
secret = "{password}"
"""


def peers(
    user="carol",
    password="carol's password",
    ike_id=None,
    client_eap_id="",
    gateway_eap_id="",
):
    client_text = CLIENT.format(
        ike_id=ike_id or user, user=user, password=password, eap_id=client_eap_id
    )
    gateway = parse_config(GATEWAY.format(eap_id=gateway_eap_id)).connections
    client = parse_config(client_text).connections
    a = Peer(SaManager(list(client), random.Random(1)), LEFT)
    b = Peer(SaManager(list(gateway), random.Random(2)), RIGHT)
    return a, b


def connect(a, b, drop=None, until=1000.0 + 60):
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, drop=drop, until=until)
    return sa, clock


def auth_requests(peer: Peer) -> int:
    messages = [decode_message(d.data) for d in peer.sent if not d.keepalive]
    return len({m.message_id for m in messages if m.exchange == ExchangeType.IKE_AUTH})


def test_eap_mschapv2_client_and_gateway_establish_with_the_same_keys():
    a, b = peers()
    sa, _ = connect(a, b)
    assert sa.state is IkeState.ESTABLISHED
    assert [e.connection for e in b.of(IkeSaEstablished)] == ["rw"]
    (ca,), (cb,) = a.of(ChildSaInstalled), b.of(ChildSaInstalled)
    assert ca.keys == cb.keys and ca.spi_in == cb.spi_out
    assert str(b.manager.find("rw")[0].remote_identity) == "carol"
    # challenge, success, EAP success, AUTH: four IKE_AUTH requests
    assert auth_requests(a) == 4


def test_eap_identity_round_when_the_gateway_sets_eap_id():
    a, b = peers(ike_id="198.51.100.1", client_eap_id=', eap_id = "carol"',
                 gateway_eap_id=', eap_id = "%any"')  # fmt: skip
    sa, _ = connect(a, b)
    assert sa.state is IkeState.ESTABLISHED
    assert auth_requests(a) == 5  # EAP-Identity comes first


def test_eap_id_pattern_refuses_another_user():
    a, b = peers(client_eap_id=', eap_id = "carol"', gateway_eap_id=', eap_id = "*@example.com"')
    sa, _ = connect(a, b)
    (failed,) = b.of(IkeSaFailed)
    assert "does not match eap_id" in failed.reason
    assert failed.notify == NotifyType.AUTHENTICATION_FAILED
    assert sa.state is IkeState.FAILED


def _refused(a, b, sa, reason: str) -> None:
    (failed,) = b.of(IkeSaFailed)
    assert reason in failed.reason
    assert failed.notify == NotifyType.AUTHENTICATION_FAILED
    (client,) = a.of(IkeSaFailed)
    assert client.notify == NotifyType.AUTHENTICATION_FAILED
    assert sa.state is IkeState.FAILED
    assert not a.of(ChildSaInstalled) and not b.of(ChildSaInstalled)
    assert b.manager.status(0.0, lambda spi: {}) == []  # nothing half-open is left


def test_wrong_password_is_refused_and_says_so():
    a, b = peers(password="not carol's password")
    sa, _ = connect(a, b)
    _refused(a, b, sa, "wrong password for user carol")


def test_unknown_user_is_refused_and_says_so():
    a, b = peers(user="dave", password="dave's password")
    sa, _ = connect(a, b)
    _refused(a, b, sa, "unknown user dave")


def test_eap_timeout_fails_the_half_open_sa():
    a, b = peers()
    rounds = []

    def drop(datagram):  # the client goes silent after its first EAP answer
        msg = decode_message(datagram.data)
        if datagram.src[0] == LEFT[0] and msg.exchange == ExchangeType.IKE_AUTH:
            rounds.append(msg.message_id)
            return msg.message_id > 2
        return False

    sa, clock = connect(a, b, drop=drop, until=1000.0 + 30)
    (failed,) = b.of(IkeSaFailed)
    assert "EAP timeout: carol did not answer within 10s" in failed.reason
    assert failed.notify == NotifyType.AUTHENTICATION_FAILED
    assert b.manager.status(0.0, lambda spi: {}) == []
    assert sa.state is IkeState.FAILED  # the client gave up after its retransmissions


def test_a_gateway_silent_during_eap_fails_the_client_with_authentication_failed():
    a, b = peers()

    def drop(datagram):  # the gateway goes silent after its MS-CHAPv2 challenge
        msg = decode_message(datagram.data)
        return (
            datagram.src[0] == RIGHT[0]
            and msg.exchange == ExchangeType.IKE_AUTH
            and (msg.message_id > 1)
        )

    sa, _ = connect(a, b, drop=drop)
    (failed,) = a.of(IkeSaFailed)
    assert failed.reason.startswith("EAP timeout: the gateway stopped answering: no response")
    assert failed.notify == NotifyType.AUTHENTICATION_FAILED
    assert a.manager.status(0.0, lambda spi: {}) == []
    (gateway,) = b.of(IkeSaFailed)
    assert "EAP timeout: carol did not answer within 10s" in gateway.reason
