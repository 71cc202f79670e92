"""Failures, loss, duplicates and tampering between two in-memory peers (RFC 7296 §2.1-§2.6)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ikepulse.config.build import retransmit_policy
from ikepulse.core.errors import InvalidSyntax
from ikepulse.core.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
)
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.core.tasks.key_exchange import create_child_sa_dh
from ikepulse.crypto.dh import key_exchange_for
from ikepulse.testing.loopback import (
    LEFT,
    RIGHT,
    Clock,
    connection,
    make_peers,
    run_until_idle,
    transfer,
)
from ikepulse.wire.enums import AuthMethod, DhId, ExchangeType, IdType, NotifyType, PayloadType
from ikepulse.wire.message import decode_message, encode_message
from ikepulse.wire.payloads import (
    AuthPayload,
    IdiPayload,
    KePayload,
    NotifyPayload,
    UnknownPayload,
)


def start(left_kw=None, right_kw=None, **right_manager):
    a, b = make_peers(left_kw, right_kw)
    for name, value in right_manager.items():
        setattr(b.manager, name, value)
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    return a, b, sa, clock


def exchange_of(datagram) -> tuple[ExchangeType, bool]:
    msg = decode_message(datagram.data)
    return msg.exchange, msg.is_response


def test_wrong_psk_fails_on_both_sides_with_authentication_failed():
    a, b, sa, clock = start(right_kw={"psk": b"not-the-same-secret"})
    run_until_idle(a, b, clock)
    (fa,), (fb,) = a.of(IkeSaFailed), b.of(IkeSaFailed)
    assert fa.notify == fb.notify == NotifyType.AUTHENTICATION_FAILED
    assert "wrong pre-shared key" in fb.reason
    assert not a.of(IkeSaEstablished) and not b.of(IkeSaEstablished)
    assert a.manager.sas == {} and b.manager.sas == {}


def test_no_common_proposal():
    a, b, sa, clock = start(
        {"ike": "aes256gcm16-prfsha256-x25519"}, {"ike": "aes128-sha256-modp2048"}
    )
    run_until_idle(a, b, clock)
    (fa,), (fb,) = a.of(IkeSaFailed), b.of(IkeSaFailed)
    assert fa.notify == fb.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert a.manager.sas == {} and b.manager.sas == {}


def test_no_common_esp_proposal_fails_only_the_child():
    a, b, sa, clock = start({"esp": "aes256gcm16"}, {"esp": "aes128-sha256"})
    run_until_idle(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    (fa,), (fb,) = a.of(ChildSaFailed), b.of(ChildSaFailed)
    assert fa.notify == fb.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert not a.of(ChildSaInstalled) and not b.of(ChildSaInstalled)


def test_traffic_selector_mismatch_fails_the_child_with_ts_unacceptable():
    a, b = make_peers()
    b.manager = SaManager(
        [connection("right.example", "left.example", "192.0.2.0/24", "198.51.100.128/25")],
        random.Random(7),
    )
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    (fa,), (fb,) = a.of(ChildSaFailed), b.of(ChildSaFailed)
    assert fa.notify == fb.notify == NotifyType.TS_UNACCEPTABLE


def test_invalid_ke_payload_retry_with_the_group_the_responder_wants():
    #   HDR, SAi1, KEi(ecp256), Ni -->
    #                <-- HDR, N(INVALID_KE_PAYLOAD, x25519)
    #   HDR, SAi1, KEi(x25519), Ni -->   (message ID 0 again)
    #                <-- HDR, SAr1, KEr(x25519), Nr
    a, b, sa, clock = start(
        {"ike": "aes256gcm16-prfsha256-ecp256-x25519"}, {"ike": "aes256gcm16-prfsha256-x25519"}
    )
    run_until_idle(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    assert a.of(IkeSaEstablished)[0].proposal == "aes256gcm16-prfsha256-x25519"
    inits = [decode_message(d.data) for d in a.sent]
    assert [(m.exchange, m.message_id) for m in inits] == [
        (ExchangeType.IKE_SA_INIT, 0),
        (ExchangeType.IKE_SA_INIT, 0),
        (ExchangeType.IKE_AUTH, 1),
    ]
    first_reply = decode_message(b.sent[0].data)
    assert first_reply.payloads == (NotifyPayload(NotifyType.INVALID_KE_PAYLOAD, b"\x00\x1f"),)


def test_cookie_challenge_then_success():
    a, b, sa, clock = start()
    b.manager.admission.policy = replace(b.manager.admission.policy, cookie_threshold=0)
    run_until_idle(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    assert b.manager.counters["cookies_sent"] == 1
    second = decode_message(a.sent[1].data)
    assert second.payloads[0].TYPE == PayloadType.NOTIFY
    assert second.payloads[0].type == NotifyType.COOKIE


def test_lost_response_is_retransmitted_and_answered_from_the_cache():
    lost = []

    def drop_first_auth_response(d):
        if exchange_of(d) == (ExchangeType.IKE_AUTH, True) and not lost:
            lost.append(d)
            return True
        return False

    a, b, sa, clock = start()
    t0 = clock.now
    run_until_idle(a, b, clock, drop=drop_first_auth_response)
    assert sa.state is IkeState.ESTABLISHED
    assert clock.now - t0 == 4.0  # first retransmit after retransmit_timeout
    assert a.manager.counters["retransmits_sent"] == 1
    assert b.manager.counters["retransmits_answered"] == 1
    assert len(b.of(IkeSaEstablished)) == 1 and len(b.of(ChildSaInstalled)) == 1
    assert b.sent[-1].data == lost[0].data  # byte-identical cached response


def test_duplicated_request_is_not_processed_twice():
    a, b, sa, clock = start()
    for _ in range(2):  # IKE_SA_INIT request, then IKE_AUTH request
        (request,) = a.manager.datagrams_to_send(clock.now)
        for _ in range(2):
            b.manager.receive_datagram(request.data, request.src, request.dst, clock.now)
        for reply in b.manager.datagrams_to_send(clock.now):
            a.manager.receive_datagram(reply.data, reply.src, reply.dst, clock.now)
    a.drain_events(), b.drain_events()
    assert sa.state is IkeState.ESTABLISHED
    assert b.manager.counters["retransmits_answered"] == 2
    assert a.manager.counters["dropped_unexpected_response"] == 2
    assert len(b.of(IkeSaEstablished)) == 1 and len(b.of(ChildSaInstalled)) == 1
    assert len(b.manager.sas) == 1


def test_bit_flipped_sk_payload_is_dropped_and_counted():
    a, b, sa, clock = start()
    flipped = []

    def flip(d):
        if exchange_of(d) == (ExchangeType.IKE_AUTH, False) and not flipped:
            data = bytearray(d.data)
            data[-5] ^= 0x10
            flipped.append(1)
            b.manager.receive_datagram(bytes(data), d.src, d.dst, clock.now)
            return True
        return False

    run_until_idle(a, b, clock, drop=flip)
    assert b.manager.counters["dropped_invalid_icv"] == 1
    assert sa.state is IkeState.ESTABLISHED  # the retransmission got through


def test_retransmissions_exhausted_fail_the_sa_with_a_reason():
    policy = retransmit_policy(timeout=1.0, base=2.0, tries=3)
    a, b, sa, clock = start({"retransmit": policy})
    t0 = clock.now
    run_until_idle(a, b, clock, drop=lambda d: True)
    (failed,) = a.of(IkeSaFailed)
    assert "no response to IKE_SA_INIT after 3 retransmits" in failed.reason
    assert clock.now - t0 == 1 + 2 + 4 + 8
    assert len(a.sent) == 4
    assert a.manager.sas == {}


def answer_to_init_with_unknown_payload(critical: bool):
    """The responder's reply to an IKE_SA_INIT request carrying an unknown payload 200."""
    a, b, sa, clock = start()
    (request,) = a.manager.datagrams_to_send(clock.now)
    msg = decode_message(request.data)
    extra = UnknownPayload(PayloadType(200), critical, b"x")
    data = encode_message(replace(msg, payloads=msg.payloads + (extra,)))
    b.manager.receive_datagram(data, request.src, request.dst, clock.now)
    (reply,) = b.manager.datagrams_to_send(clock.now)
    return decode_message(reply.data)


def test_unknown_critical_payload_is_refused():
    assert answer_to_init_with_unknown_payload(critical=True).payloads == (
        NotifyPayload(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, bytes([200])),
    )


def test_unknown_non_critical_payload_is_ignored():
    reply = answer_to_init_with_unknown_payload(critical=False)
    assert PayloadType.SA in [p.TYPE for p in reply.payloads]


def established():
    a, b, sa, clock = start()
    run_until_idle(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    a.events.clear(), b.events.clear()
    return a, b, sa, clock


def test_delete_from_initiator_is_honoured():
    a, b, sa, clock = established()
    sa.delete(clock.now)
    run_until_idle(a, b, clock)
    (da,), (db,) = a.of(IkeSaDeleted), b.of(IkeSaDeleted)
    assert not da.by_peer and db.by_peer
    assert len(a.of(ChildSaDeleted)) == 1 and len(b.of(ChildSaDeleted)) == 1
    assert a.manager.sas == {} and b.manager.sas == {}


def test_delete_from_responder_is_honoured():
    a, b, sa, clock = established()
    (peer_sa,) = b.manager.sas.values()
    peer_sa.delete(clock.now)
    run_until_idle(a, b, clock)
    assert a.of(IkeSaDeleted)[0].by_peer and not b.of(IkeSaDeleted)[0].by_peer
    assert a.manager.sas == {} and b.manager.sas == {}


def test_child_delete_removes_both_halves():
    a, b, sa, clock = established()
    (child,) = sa.children
    sa.children.delete(sa.children.entry(child), clock.now)
    run_until_idle(a, b, clock)
    (ca,), (cb,) = a.of(ChildSaDeleted), b.of(ChildSaDeleted)
    assert (ca.spi_in, ca.spi_out) == (cb.spi_out, cb.spi_in)
    assert list(sa.children) == [] and sa.state is IkeState.ESTABLISHED


def test_liveness_check_is_answered():
    a, b, sa, clock = established()
    clock.now += 30
    sa.check_liveness(clock.now)
    run_until_idle(a, b, clock)
    assert sa.liveness.last_inbound == clock.now
    assert [exchange_of(d) for d in a.sent[-1:]] == [(ExchangeType.INFORMATIONAL, False)]
    assert [exchange_of(d) for d in b.sent[-1:]] == [(ExchangeType.INFORMATIONAL, True)]


def test_request_for_unknown_spi_is_dropped_and_answered_with_invalid_ike_spi():
    a, b, sa, clock = established()
    forged = bytearray(a.sent[-1].data)
    forged[8:16] = b"\x99" * 8
    b.manager.receive_datagram(bytes(forged), LEFT, RIGHT, clock.now)
    assert b.manager.counters["dropped_unknown_spi"] == 1
    (reply,) = b.manager.datagrams_to_send(clock.now)
    msg = decode_message(reply.data)
    assert msg.is_response and msg.encrypted is None  # unprotected, RFC 7296 §2.21.4
    assert [p.type for p in msg.payloads] == [
        NotifyType.INVALID_IKE_SPI,
        NotifyType.QUICK_CRASH_DETECTION,
    ]
    assert len(b.manager.sas) == 1  # nothing else changed
    for _ in range(20):  # and it is rate-limited
        b.manager.receive_datagram(bytes(forged), LEFT, RIGHT, clock.now)
    assert len(b.manager.datagrams_to_send(clock.now)) == 9
    assert b.manager.counters["crash_reports_rate_limited"] == 11


def test_create_child_sa_request_with_only_an_error_notify_gets_invalid_syntax():
    # An error notify lifts the payload minimums (§3.10.1), so the request has no SA payload.
    a, b, sa, clock = established()
    (peer_sa,) = b.manager.sas.values()
    request = sa.encode(
        ExchangeType.CREATE_CHILD_SA,
        peer_sa.tasks.expected_request_id,
        response=False,
        payloads=[NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN)],
    )
    b.manager.receive_datagram(request, LEFT, RIGHT, clock.now)
    (reply,) = b.manager.datagrams_to_send(clock.now)
    answer = decode_message(reply.data)
    assert [p.type for p in sa.unprotect(reply.data, answer)] == [NotifyType.INVALID_SYNTAX]
    assert peer_sa.state is IkeState.ESTABLISHED and len(peer_sa.children) == 1


def test_create_child_sa_response_choosing_a_group_we_sent_no_ke_for_is_refused():
    # We offered x25519 and modp2048 with a KE for x25519; a conforming responder wanting
    # modp2048 asks with INVALID_KE_PAYLOAD instead of answering with its own KE (§1.3).
    rng = random.Random(7)
    ours = key_exchange_for(DhId.CURVE25519, rng)
    theirs = key_exchange_for(DhId.MODP_2048, rng)
    answer = KePayload(DhId.MODP_2048, theirs.public_key)
    with pytest.raises(InvalidSyntax, match="MODP_2048, which we sent no KE for"):
        create_child_sa_dh(ours, DhId.MODP_2048, answer, True, rng, "CHILD SA rekey")


@pytest.mark.parametrize("peer_state", ["ESTABLISHED", "DELETING"])
def test_ike_auth_on_an_ike_sa_that_is_up_gets_invalid_syntax_and_changes_nothing(peer_state):
    #   left (authenticated, misbehaving)          right
    #   IKE_AUTH {IDi, AUTH} on the established IKE SA -->
    #                                   <-- N(INVALID_SYNTAX); the IKE SA stays as it was
    a, b, sa, clock = established()
    (peer_sa,) = b.manager.sas.values()
    if peer_state == "DELETING":
        peer_sa.delete(clock.now)
        b.manager.datagrams_to_send(clock.now)
    request = sa.encode(
        ExchangeType.IKE_AUTH,
        peer_sa.tasks.expected_request_id,
        response=False,
        payloads=[
            IdiPayload(IdType.ID_FQDN, b"left.example"),
            AuthPayload(AuthMethod.SHARED_KEY_MIC, bytes(32)),
        ],
    )
    b.manager.receive_datagram(request, LEFT, RIGHT, clock.now)
    (reply,) = b.manager.datagrams_to_send(clock.now)
    answer = decode_message(reply.data)
    assert [p.type for p in sa.unprotect(reply.data, answer)] == [NotifyType.INVALID_SYNTAX]
    assert peer_sa.state.name == peer_state and len(peer_sa.children) == 1
    assert b.of(IkeSaFailed) == [] and b.of(IkeSaEstablished) == []


def test_an_ike_sa_the_peer_deletes_while_our_request_is_in_flight_is_forgotten():
    #   left                                       right
    #   INFORMATIONAL (liveness check) --x (lost)
    #                     <-- INFORMATIONAL {D(IKE)}
    #   {} -->            both forget the IKE SA; left's check needs no answer any more
    a, b, sa, clock = established()
    (peer_sa,) = b.manager.sas.values()
    sa.check_liveness(clock.now)
    transfer(a, b, clock, drop=lambda datagram: True)
    peer_sa.delete(clock.now)
    transfer(b, a, clock)
    assert sa.state is IkeState.DELETED and a.manager.sas == {}
    assert a.manager.get_timer() is None


def test_nat_is_still_detected_after_a_cookie_challenge():
    """The COOKIE answer carries no NAT-D (RFC 7296 §2.6): detection happens on the retry."""
    a, b, sa, clock = start()
    b.manager.admission.policy = replace(b.manager.admission.policy, cookie_threshold=0)
    a.public = "192.0.2.99"
    run_until_idle(a, b, clock)
    assert b.manager.counters["cookies_sent"] == 1
    (peer,) = b.manager.sas.values()
    assert sa.nat_local and peer.nat_remote and sa.udp_encap
