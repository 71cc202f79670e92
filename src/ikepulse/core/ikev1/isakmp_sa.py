"""One ISAKMP SA (RFC 2408 §2.4, RFC 2409): phase 1, then Quick Modes for its IPsec SAs,
Informationals and RFC 3706 DPD.

It is an ``IkeSa`` whose exchanges are IKEv1's: the CHILD SAs (``Children``), liveness
(``PeerLiveness``), lifetimes (``IkeRenewal``), NAT state, events and life cycle are the
same parts an IKEv2 SA has. Phase 1 cannot be rekeyed in IKEv1: at its renewal a new ISAKMP
SA is set up and takes the IPsec SAs over (strongSwan does the same), and the old one is
deleted a little later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.errors import CryptoError
from ...wire.buffer import DecodeError
from ...wire.isakmp import (
    FLAG_ENCRYPTED,
    IsakmpMessage,
    PayloadChain,
    decode_chain,
    encode_chain,
    encode_isakmp,
)
from ...wire.isakmp_enums import ExchangeV1, NotifyV1, ProtocolV1
from ...wire.isakmp_payloads import DeleteV1, NotifyV1Payload
from .. import close_action
from ..children import LIVE, ChildEntry
from ..connection import ChildConfig, CloseAction, ConnectionConfig, Identity
from ..errors import AuthenticationFailed
from ..events import IkeSaReauthenticated
from ..ike_sa import IkeSa
from ..peer_liveness import Cause, Probe
from ..state import IkeState
from ..task import Purpose
from . import inbound
from .flights import Flights
from .informational import Dpd, dpd_notify, signed_informational
from .keying import V1Keying
from .phase1 import Phase1
from .quick_mode import QuickMode

if TYPE_CHECKING:
    from ..hosts import SaRegistry

HALF_OPEN_TIMEOUT = 30.0
"""Seconds a responder waits for phase 1 to complete (it does not retransmit MM2 and MM4
on its own: an unanswered spoofed first message costs one datagram, not six)."""
OLD_SA_DELETE_DELAY = 3.0
"""Seconds between a new ISAKMP SA and our Delete of the one it renews: the peer moves the
IPsec SAs over first (strongSwan does it in a job after the last phase 1 message)."""
REKEYED_DELETE_DELAY = 3.0
"""Seconds an IPsec SA we rekeyed still receives before we delete it (make-before-break)."""


class IsakmpSa(IkeSa):
    """An IKEv1 SA; ``aggressive`` picks Aggressive Mode for phase 1."""

    version = 1

    def __init__(self, manager: SaRegistry, *, aggressive: bool = False, **ike_sa) -> None:
        """``ike_sa``: ``IkeSa``'s keywords (role, cookies, addresses, candidates, now)."""
        super().__init__(manager, **ike_sa)
        self.keying = self.sk = V1Keying()
        self.tasks = self.flights = Flights(self.retransmit, self.rng)
        self.phase1 = Phase1(self, aggressive)
        self.quick: dict[int, QuickMode] = {}
        self.dpd = Dpd.fresh(self.rng)
        self._retiring: list[tuple[float, ChildEntry]] = []
        self._delete_old_at: float | None = None
        self.answering = b""
        """Digest of the message being processed: our answer is resent on its repeats."""
        self.first_payload = 0
        """Its header's first payload type (the decrypted chain starts with it)."""
        self.peer_error: NotifyV1 | None = None
        """An error the peer sent in the clear while phase 1 ran (never acted on alone)."""

    # --- for phase 1 ------------------------------------------------------------------------

    def v1_candidates(self, aggressive: bool) -> list[ConnectionConfig]:
        return [c for c in self.candidates if not aggressive or c.aggressive]

    def message(self, exchange, message_id: int, payloads: list, encrypted: bool) -> bytes:
        if not encrypted:
            return encode_isakmp(self.spi_i, self.spi_r, exchange, 0, message_id,
                                 payloads=payloads)  # fmt: skip
        first, body = encode_chain(payloads)
        sealed = (first, self.keying.seal(message_id, body))
        return encode_isakmp(self.spi_i, self.spi_r, exchange, FLAG_ENCRYPTED, message_id,
                             encrypted=sealed)  # fmt: skip

    def _send(self, message_id: int, packet: bytes, now: float, final: bool) -> None:
        self.flights.sent(message_id, (packet,), now, answers=self.answering, final=final)
        self.send((packet,), now)

    def send_phase1(self, payloads: list, now: float, *, encrypted=False, final=False) -> None:
        exchange = ExchangeV1.AGGRESSIVE if self.phase1.aggressive else ExchangeV1.MAIN
        self._send(0, self.message(exchange, 0, payloads, encrypted), now, final)

    def open_phase1(self, ciphertext: bytes) -> PayloadChain:
        """Decrypt a phase 1 message under the keys just derived; the IV moves on only if
        it decodes (a wrong PSK shows here first)."""
        try:
            plaintext, iv = self.keying.open(0, ciphertext)
            chain = decode_chain(self.first_payload, plaintext, padding=True)
        except (CryptoError, DecodeError) as exc:
            self.phase1.undecryptable += 1
            raise AuthenticationFailed(
                f"cannot decrypt the peer's phase 1 message ({exc}): different pre-shared key?"
            ) from None
        self.keying.advance(0, iv)
        return chain

    def send_quick(self, message_id: int, payloads: list, now: float, final: bool) -> None:
        self._send(message_id, self.message(ExchangeV1.QUICK, message_id, payloads, True),
                   now, final)  # fmt: skip

    def send_informational(self, payloads: list, now: float) -> None:
        """One protected Informational (HASH(1) first, §5.7) with a fresh message ID."""
        message_id = self.new_message_id()
        protected = signed_informational(self.keying, message_id, payloads)
        packet = self.message(ExchangeV1.INFORMATIONAL, message_id, protected, True)
        self.keying.forget(message_id)
        self.send((packet,), now)

    def new_message_id(self) -> int:
        while True:
            message_id = int.from_bytes(self.rng.randbytes(4), "big")
            if message_id and message_id not in self.quick:
                return message_id

    def phase1_done(self, peer_id: Identity, now: float) -> None:
        """Phase 1 authenticated both ends (RFC 2409 §5): the SA is up; the IPsec SAs come
        with Quick Modes, or from the ISAKMP SA this one renews."""
        self.keying.phase1_complete()
        self.flights.landed(0)  # MM5 / AM2 stop; kept to answer the peer's repeats
        self.established(now, self.connection.local_id, peer_id, None, self.initial_contact)
        renewed = self.renewal.reauth_of
        if renewed is not None:
            self.children.take(renewed.children.hand_over(), now)
            self.renewal.reauth_of = None
            renewed.renewal.reauthentication_over(self)
            self.emit(IkeSaReauthenticated(self.name, renewed.spi_i, self.spi_i))
            renewed.superseded(now)
            return
        if not self.initiator and not self.initial_contact:
            for other in self.manager.siblings(self):
                if isinstance(other, IsakmpSa) and other.state is IkeState.ESTABLISHED:
                    self.count("ipsec_sas_adopted")
                    self.children.take(other.children.hand_over(), now)

    def superseded(self, now: float) -> None:
        """A newer ISAKMP SA took our IPsec SAs: delete this one a little later."""
        self._delete_old_at = now + OLD_SA_DELETE_DELAY

    def learn_notifies(self, chain: PayloadChain, now: float) -> None:
        """Notifies inside phase 1's authenticated messages (INITIAL-CONTACT in MM5)."""
        for notify in chain.all(NotifyV1Payload):
            if notify.type == NotifyV1.INITIAL_CONTACT:
                self.initial_contact = True

    def note_peer_error(self, error: NotifyV1, now: float) -> None:
        self.peer_error = error

    # --- IkeSa parts done the IKEv1 way -----------------------------------------------------

    def connect(self, now: float, children: list[ChildConfig] | None = None) -> None:
        self.child_configs = list(self.connection.children) if children is None else children
        self.state_to(IkeState.CONNECTING)
        self.phase1.start(now)

    def established(self, now, local_id, remote_id, peer_qcd_token, initial_contact) -> None:
        configs, self.child_configs = self.child_configs, []  # Quick Modes, not IKE_AUTH
        super().established(now, local_id, remote_id, peer_qcd_token, initial_contact)
        self.child_configs = configs
        for config in configs:
            self.children.create(config, now)

    def start(self, purpose: Purpose, now: float, *args, waits=None):
        """The IKEv1 exchange for what a part of the SA asks for."""
        deleting = purpose is Purpose.DELETE_IKE and self.state is IkeState.DELETING
        if self.state is not IkeState.ESTABLISHED and not deleting:
            return
        if purpose in (Purpose.CREATE_CHILD, Purpose.REKEY_CHILD):
            qm = QuickMode(self, self.new_message_id(), *args)
            self.quick[qm.message_id] = qm
            qm.start(now)
        elif purpose is Purpose.DELETE_CHILD:
            (spis,) = args
            for spi in spis:  # one SPI per Delete, as strongSwan sends them
                self.send_informational([DeleteV1(ProtocolV1.ESP, (spi,))], now)
                entry = self.children.by_spi_in(spi)
                if entry is not None:
                    self.children.remove(entry, by_peer=False)
        elif purpose is Purpose.DELETE_IKE:
            for entry in self.children.entries():
                self.send_informational([DeleteV1(ProtocolV1.ESP, (entry.spi_in,))], now)
            self.send_informational([DeleteV1(ProtocolV1.ISAKMP, (self.spi_i + self.spi_r,))], now)
            self.deleted(by_peer=False, now=now)
        elif purpose is Purpose.INVALID_SPI_REPORT:
            (spi,) = args
            self.send_informational(
                [NotifyV1Payload(NotifyV1.INVALID_SPI, ProtocolV1.ESP, spi)], now
            )

    def deleted(self, by_peer: bool, now: float) -> None:
        """As an IKE SA's; but an IKEv1 peer deletes each IPsec SA before the ISAKMP SA,
        so the children it closed a moment ago, whose Quick Modes ``close_action = start``
        began again, get the close_action of the ISAKMP SA's delete."""
        reopening = [
            qm.config.name
            for qm in self.quick.values()
            if qm.initiator and qm.rekeys is None and qm.config.close_action is CloseAction.START
        ]
        closed = (by_peer and self.state is IkeState.ESTABLISHED and self.renewal.idle
                  and not any(e.phase in LIVE for e in self.children.entries()))  # fmt: skip
        super().deleted(by_peer, now)
        if closed and reopening and self.state is IkeState.DELETED:
            close_action.ike_closed(self.manager, self, reopening, now)

    def in_flight(self, *purposes: Purpose) -> bool:
        return bool(self.quick) if purposes else self.flights.in_flight()

    def retire_later(self, entry: ChildEntry, now: float) -> None:
        """Delete a rekeyed IPsec SA once its successor carries the traffic."""
        self._retiring.append((now + REKEYED_DELETE_DELAY, entry))

    def rekey(self, now: float) -> bool:
        """IKEv1 has no phase 1 rekey: renew with a new ISAKMP SA instead."""
        return self.reauthenticate(now) is not None

    def reauthenticate(self, now: float) -> IkeSa | None:
        if self.state is not IkeState.ESTABLISHED or not self.renewal.idle:
            return None
        connection = self.connection
        new = self.manager.initiate(
            self.name, (self.local[0], connection.local_port),
            (self.remote[0], connection.remote_port), now, children=[], reauth_of=self,
        )  # fmt: skip
        self.renewal.reauthentication_started(new)
        return new

    def exchange_completed(self, now: float) -> None:
        """No IKE_AUTH-driven reauthentication to finish: ``phase1_done`` does it."""

    def check_liveness(self, now: float, budget=None, cause: Cause = Cause.IDLE) -> None:
        """RFC 3706 R-U-THERE, retransmitted inside ``budget`` with new sequence numbers;
        only with a peer that announced DPD."""
        if self.state is not IkeState.ESTABLISHED or self.liveness.probing:
            return
        if not self.phase1.peer.dpd:
            return
        budget = self.policy.dpd_timeout if budget is None else budget
        waits = self.liveness.probe_started(budget, cause, now, self.policy, self.check_early())
        sequence = self.dpd.start(waits, now)
        self.send_informational([dpd_notify(self, NotifyV1.R_U_THERE, sequence)], now)

    def probe(self, due: Probe, now: float) -> None:
        """R-U-THERE, or, to a peer that did not announce DPD, nothing to send: the check
        is over as it starts (it cannot be asked)."""
        if self.phase1.peer.dpd:
            self.check_liveness(now, due.budget, due.cause)
            return
        self.liveness.probe_started(due.budget, due.cause, now, self.policy, self.check_early())
        self.liveness.proven(now, now, check_answered=True)

    def dpd_acknowledged(self, sequence: int, now: float) -> None:
        if not self.dpd.acknowledged(sequence):
            self.count("dpd_acks_unexpected")
            return
        self.liveness.observe_rtt(now - self.dpd.started_at, self.dpd.retransmits)
        self.liveness.proven(now, self.dpd.last_sent, check_answered=True)

    # --- input ----------------------------------------------------------------------------

    def receive(self, raw: bytes, msg: IsakmpMessage, src, dst, now: float) -> None:
        inbound.receive(self, raw, msg, src, dst, now)

    # --- timer ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        if self.finished:
            return None
        times = [self.flights.deadline(), self.renewal.linger_until, self._delete_old_at]
        if self.state is IkeState.CONNECTING and not self.initiator:
            times.append(self.created_at + HALF_OPEN_TIMEOUT)
        times += [t for t, _ in self._retiring]
        if self.state is IkeState.ESTABLISHED:
            times += [
                self.dpd.deadline,
                self.liveness.deadline(self.policy),
                self.children.deadline(),
                self.renewal.deadline(),
            ]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self._delete_old_at is not None and now >= self._delete_old_at:
            self._delete_old_at = None
            self.delete(now)
            return
        if self.renewal.linger_until is not None and now >= self.renewal.linger_until:
            self.deleted(by_peer=False, now=now)
            return
        if self.state is IkeState.CONNECTING and not self.initiator:
            if now >= self.created_at + HALF_OPEN_TIMEOUT:
                self.fail(f"phase 1 not completed within {HALF_OPEN_TIMEOUT:g}s", None, now)
                return
        self._flights_due(now)
        self._retire_due(now)
        if self.dpd.deadline is not None and now >= self.dpd.deadline:
            sequence = self.dpd.resend(now)
            if sequence is None:
                self.peer_dead(self.liveness.verdict(now), now)
                return
            self.count("retransmits_sent")
            self.send_informational([dpd_notify(self, NotifyV1.R_U_THERE, sequence)], now)
        self.established_due(now)

    def _flights_due(self, now: float) -> None:
        resend, exhausted = self.flights.due(now)
        for packets in resend:
            self.count("retransmits_sent")
            self.send(packets, now)
        for message_id in exhausted:
            reason = f"no answer after {self.retransmit.tries} retransmits"
            if message_id == 0:
                if self.phase1.undecryptable:
                    reason += " (the peer's replies did not decrypt: different pre-shared key?)"
                elif self.peer_error is not None:
                    reason += f" (the peer said {self.peer_error.name})"
                self.no_response(f"phase 1: {reason}", now)
                return
            qm = self.quick.pop(message_id, None)
            if qm is not None:
                self.keying.forget(message_id)
                qm.failed(f"Quick Mode: {reason}", None, now)
                if self.state is IkeState.ESTABLISHED and not self.liveness.probing:
                    self.check_liveness(now, cause=Cause.UNPROVEN)

    def _retire_due(self, now: float) -> None:
        due = [entry for at, entry in self._retiring if at <= now]
        self._retiring = [(at, e) for at, e in self._retiring if at > now]
        for entry in due:
            self.children.delete(entry, now)
