"""Which part of an ISAKMP SA an IKEv1 message is for, once its cookies found the SA:
repeats answered from the flight they repeat, phase 1, Quick Mode and Informationals
decrypted and checked (RFC 2408 §3.1, RFC 2409 §5.5, §5.7) before anything acts on them.

A message that does not decrypt or whose HASH does not verify is counted and dropped and
moves no IV; only phase 1, still unauthenticated, may fail on what it is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.errors import CryptoError
from ...wire.buffer import DecodeError
from ...wire.enums import NotifyType
from ...wire.isakmp import IsakmpMessage, PayloadChain, decode_chain
from ...wire.isakmp_enums import ExchangeV1, NotifyV1, ProtocolV1
from ...wire.isakmp_payloads import NotifyV1Payload
from ..errors import AuthenticationFailed, Dropped, IkeError
from ..state import IkeState
from . import informational
from .flights import digest
from .quick_mode import QuickMode

if TYPE_CHECKING:
    from ..hosts import IsakmpHost

V1_NOTIFIES = {
    NotifyType.NO_PROPOSAL_CHOSEN: NotifyV1.NO_PROPOSAL_CHOSEN,
    NotifyType.AUTHENTICATION_FAILED: NotifyV1.AUTHENTICATION_FAILED,
    NotifyType.TS_UNACCEPTABLE: NotifyV1.INVALID_ID_INFORMATION,
    NotifyType.INVALID_SYNTAX: NotifyV1.PAYLOAD_MALFORMED,
}
"""The IKEv1 error (RFC 2408 §3.14.1) for an error the core raises with its IKEv2 notify."""
UNDECRYPTABLE_ANSWERS = 2
"""Answers to our phase 1 identity that do not decrypt before we blame the PSK."""


def receive(sa: IsakmpHost, raw: bytes, msg: IsakmpMessage, src, dst, now: float) -> None:
    repeated = sa.flights.repeat_of(msg.message_id, raw)
    if repeated is not None:
        sa.count("retransmits_answered")
        sa.liveness.retransmission_seen(now)
        sa.send(repeated, now)
        return
    sa.answering = digest(raw)
    sa.first_payload = msg.first_payload
    try:
        if msg.exchange in (ExchangeV1.MAIN, ExchangeV1.AGGRESSIVE):
            _phase1(sa, msg, src, dst, now)
        elif not msg.is_encrypted or not sa.keying.ready:
            _unprotected(sa, msg, now)
        elif msg.exchange == ExchangeV1.QUICK:
            _quick(sa, msg, src, dst, now)
        elif msg.exchange == ExchangeV1.INFORMATIONAL:
            _informational(sa, msg, src, dst, now)
        else:
            raise Dropped("unsupported_exchange", f"IKEv1 exchange {msg.exchange.name}")
    finally:
        sa.answering = b""


def _phase1(sa: IsakmpHost, msg: IsakmpMessage, src, dst, now: float) -> None:
    if sa.state is not IkeState.CONNECTING or msg.message_id != 0:
        raise Dropped("unexpected_message", "phase 1 message outside phase 1")
    if sa.phase1.aggressive != (msg.exchange == ExchangeV1.AGGRESSIVE):
        raise Dropped("unexpected_message", "phase 1 message of the other mode")
    if sa.initiator and not any(sa.spi_r):
        sa.set_responder_spi(msg.rcookie)
    chain = msg.chain
    if msg.is_encrypted != sa.phase1.encrypted_next and not sa.phase1.either_next:
        raise Dropped("unexpected_message", "phase 1 message (not) encrypted out of turn")
    if msg.is_encrypted and (sa.initiator or sa.phase1.expect != 5):
        try:
            chain = sa.open_phase1(msg.encrypted)
        except AuthenticationFailed as exc:  # unauthenticated: only counted
            _keys_differ(sa, msg.exchange, now)
            raise Dropped("undecryptable", exc.reason) from None
    sa.authenticated_inbound(src, dst, now)  # phase 1 answers go where it came from
    try:
        sa.phase1.receive(chain, msg.encrypted, src, dst, now)
    except IkeError as exc:
        if not sa.initiator and exc.notify in V1_NOTIFIES:
            _refuse(sa, V1_NOTIFIES[exc.notify], now)
        sa.fail(f"phase 1: {exc.reason}", exc.notify, now)


def _keys_differ(sa: IsakmpHost, exchange: ExchangeV1, now: float) -> None:
    """The peer answered two of our transmissions with messages our keys cannot read
    (strongSwan answers a wrong PSK with PAYLOAD_MALFORMED under its own keys): give
    up now rather than after every retransmission."""
    if sa.initiator and sa.phase1.undecryptable >= UNDECRYPTABLE_ANSWERS:
        sa.fail(
            f"phase 1: {sa.phase1.undecryptable} answers of the peer to our identity"
            f" ({exchange.name}) do not decrypt: different pre-shared key?",
            None,
            now,
        )


def _refuse(sa: IsakmpHost, error: NotifyV1, now: float) -> None:
    """Tell the initiator why phase 1 stops, in the clear (as strongSwan does)."""
    notify = NotifyV1Payload(error, ProtocolV1.ISAKMP, sa.spi_i + sa.spi_r)
    message_id = sa.new_message_id()
    sa.send((sa.message(ExchangeV1.INFORMATIONAL, message_id, [notify], False),), now)


def _unprotected(sa: IsakmpHost, msg: IsakmpMessage, now: float) -> None:
    """Unencrypted notifies never act on an SA; while phase 1 runs, an error notify
    (NO_PROPOSAL_CHOSEN, ...) says why the peer will not go on."""
    errors = [n.type for n in msg.payloads if isinstance(n, NotifyV1Payload)
              and n.type.is_error]  # fmt: skip
    if errors and sa.state is IkeState.CONNECTING:
        sa.fail(f"the peer refused phase 1: {errors[0].name}", None, now)
        return
    raise Dropped("unauthenticated", "unprotected IKEv1 message")


def _open(sa: IsakmpHost, msg: IsakmpMessage, now: float) -> tuple[PayloadChain, bytes]:
    try:
        plaintext, iv = sa.keying.open(msg.message_id, msg.encrypted)
        chain = decode_chain(msg.first_payload, plaintext, padding=True)
    except (CryptoError, DecodeError):
        if msg.message_id not in sa.quick:  # no IV kept for a forged message ID
            sa.keying.forget(msg.message_id)
        if sa.state is IkeState.CONNECTING:
            sa.phase1.undecryptable += 1
            _keys_differ(sa, msg.exchange, now)
        raise Dropped("undecryptable", "IKEv1 message does not decrypt") from None
    return chain, iv


def _quick(sa: IsakmpHost, msg: IsakmpMessage, src, dst, now: float) -> None:
    if sa.state is not IkeState.ESTABLISHED:
        raise Dropped("unexpected_message", "Quick Mode before phase 1 is done")
    qm = sa.quick.get(msg.message_id)
    if qm is None:
        qm = QuickMode(sa, msg.message_id)
    chain, iv = _open(sa, msg, now)
    flight = sa.flights.current(msg.message_id)  # ours that this message answers
    before = sa.keying.advance(msg.message_id, iv)
    try:
        done = qm.receive(chain, now)
    except AuthenticationFailed as exc:  # not the peer's: the IV stays
        sa.keying.advance(msg.message_id, before)
        if msg.message_id not in sa.quick:
            sa.keying.forget(msg.message_id)
        raise Dropped("bad_hash", exc.reason) from None
    except IkeError as exc:
        _quick_failed(sa, qm, exc, now)
        return
    sa.authenticated_inbound(src, dst, now)
    if flight is not None and sa.flights.current(msg.message_id) is flight:
        sa.flights.landed(msg.message_id)  # (a new one, QM2 or QM3, replaced it)
    if qm.initiator and flight is not None:
        sa.liveness.observe_rtt(now - flight.sent_at, flight.retransmits)
        sa.liveness.proven(now, flight.sent_at)
    if done:
        sa.quick.pop(msg.message_id, None)
        sa.keying.forget(msg.message_id)
    else:
        sa.quick[msg.message_id] = qm


def _quick_failed(sa: IsakmpHost, qm: QuickMode, error: IkeError, now: float) -> None:
    sa.quick.pop(qm.message_id, None)
    sa.keying.forget(qm.message_id)
    sa.flights.end(qm.message_id)
    qm.failed(error.reason, error.notify, now)
    if not qm.initiator and error.notify is not None:
        notify = V1_NOTIFIES.get(error.notify)  # IKEv1's number, not IKEv2's
        if notify is not None:
            sa.send_informational([NotifyV1Payload(notify, ProtocolV1.ESP, qm.spi_in)], now)


def _informational(sa: IsakmpHost, msg: IsakmpMessage, src, dst, now: float) -> None:
    if msg.message_id in sa.quick:
        raise Dropped("unexpected_message", "Informational with a Quick Mode's ID")
    chain, _ = _open(sa, msg, now)
    sa.keying.forget(msg.message_id)
    try:
        informational.verify(sa, chain, msg.message_id)
    except IkeError as exc:
        raise Dropped("bad_hash", exc.reason) from None
    sa.authenticated_inbound(src, dst, now)
    informational.act(sa, chain, now)
