"""One IKE SA: identity, state, addresses and life-cycle verbs, coordinating the parts it owns
(RFC 7296 §1, §2.14).

    sk        SkProtection  keys, nonces, SK payload protection
    children  Children      one ChildEntry per CHILD SA, with its phase and limits
    liveness  PeerLiveness  signs of life, probes, keepalives, the verdict
    mobility  Mobility      MOBIKE: negotiated or not, the peer's addresses, the NAT mapping
    renewal   IkeRenewal    lifetimes, rekey and reauthentication in progress
    fragments Fragments     RFC 7383: the peer's support, reassembly of SKF fragments
    tasks     TaskManager   message IDs, retransmission, the response cache

Tasks see it as a ``hosts.TaskHost``, its task manager as a ``hosts.ExchangeHost``; it sees
its manager as a ``hosts.SaRegistry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509

from ..wire.message import FLAG_INITIATOR, FLAG_RESPONSE, Message
from ..wire.payloads import EncryptedFragmentPayload, Payload
from . import close_action, exchanges, succession
from .children import LIVE, Children
from .connection import ChildConfig, ConnectionConfig, Identity, RetransmitPolicy
from .errors import Dropped
from .events import (
    Address,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    PeerDead,
    SaEndpointsChanged,
)
from .fragments import FragmentPolicy, Fragments, Opened
from .liveness import LivenessPolicy, earliest
from .mobility import Mobility, SourceFor, roam
from .negotiate import Suite
from .peer_liveness import Cause, Dead, PeerLiveness, Probe
from .qcd import crash_reported
from .randomness import fraction
from .renewal import IkeRenewal, RenewalPhase
from .sk_protection import SkProtection
from .state import FINAL, TRANSITIONS, IkeState, checked
from .task import Inbound, Purpose, Task
from .task_manager import TaskManager

if TYPE_CHECKING:
    from .hosts import SaRegistry

IKE_PORT = 500


class IkeSa:
    """State of one IKE SA. Created by ``SaManager``; driven by its task manager."""

    version = 2

    def __init__(
        self,
        manager: SaRegistry,
        *,
        initiator: bool,
        spi_i: bytes,
        spi_r: bytes,
        local: Address,
        remote: Address,
        candidates: tuple[ConnectionConfig, ...],
        now: float,
    ) -> None:
        self.manager = manager
        self.rng = manager.rng
        self.initiator = initiator
        self.spi_i, self.spi_r = spi_i, spi_r
        self.local, self.remote = local, remote
        self.candidates = candidates
        self.connection: ConnectionConfig | None = candidates[0] if initiator else None
        self.state = IkeState.CREATED
        self.created_at = now
        self.established_at: float | None = None
        self.nat_local = self.nat_remote = False
        self.local_identity: Identity | None = None
        self.remote_identity: Identity | None = None
        self.peer_qcd_token: bytes | None = None
        self.peer_certificate: x509.Certificate | None = None
        """The end-entity certificate the peer authenticated with (RFC 7296 §3.6)."""
        self.initial_contact = False
        """Responder: the peer said it holds no other IKE SA with us (§2.4)."""
        self.sk = SkProtection(self.rng)
        self.children = Children(self)
        self.liveness = PeerLiveness(now)
        self.renewal = IkeRenewal()
        self.mobility = Mobility()
        self.fragments = Fragments(self.count)
        self.tasks = TaskManager(self)
        self.child_configs: list[ChildConfig] = []
        """Initiator: the CHILD SAs to create, the first one in IKE_AUTH."""

    # --- identity and policy ----------------------------------------------------------------

    @property
    def local_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    @property
    def name(self) -> str:
        return self.connection.name if self.connection else ""

    def exported_keys(self) -> tuple:
        """Algorithms and keys for ``IkeSaEstablished``/``IkeSaRekeyed``, only when the
        daemon exports keys (``[daemon] save_keys``): otherwise the keys never leave."""
        return self.sk.export() if self.manager.export_keys else ()

    @property
    def label(self) -> str:
        """``name[spi_i]`` for log lines."""
        return f"{self.name or '?'}[{self.spi_i.hex()}]"

    @property
    def retransmit(self) -> RetransmitPolicy:
        return (self.connection or self.candidates[0]).retransmit

    @property
    def policy(self) -> LivenessPolicy:
        return (self.connection or self.candidates[0]).liveness

    @property
    def fragment_policy(self) -> FragmentPolicy:
        return (self.connection or self.candidates[0]).fragmentation

    @property
    def udp_encap(self) -> bool:
        return self.nat_local or self.nat_remote

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def select_connection(self, connection: ConnectionConfig) -> None:
        self.connection = connection

    def set_responder_spi(self, spi: bytes) -> None:
        self.spi_r = spi

    def state_to(self, new: IkeState) -> None:
        self.state = checked(TRANSITIONS, self.state, new, "IKE SA state")
        self.manager.sas.touch(self)  # whoever moved it: its deadline is filed again

    def count(self, name: str) -> None:
        self.manager.counters[name] += 1

    def emit(self, event) -> None:
        self.manager.emit(event)

    def in_flight(self, *purposes: Purpose) -> bool:
        return self.tasks.in_flight(*purposes)

    def start(self, purpose: Purpose, now: float, *args, waits: list[float] | None = None):
        """Queue our exchange of ``purpose`` (``args``: see ``exchanges.request``)."""
        self.tasks.queue_exchange(exchanges.request(purpose, self, *args), now, waits)

    # --- messages -----------------------------------------------------------------------------

    def derive_keys(self, suite: Suite, shared: bytes, nonces, rekeyed: IkeSa | None = None):
        """§2.14 keys; for a rekey (§2.18) SKEYSEED comes from the old SA's SK_d."""
        old = None if rekeyed is None else rekeyed.sk
        self.sk.derive(suite, shared, nonces, (self.spi_i, self.spi_r), self.initiator, old)

    def encode(self, exchange, message_id, *, response, payloads: list[Payload], zero_spi=False):
        """The message in one datagram (never fragmented)."""
        (packet,) = self._protect(exchange, message_id, response, payloads, zero_spi, None)
        return packet

    def datagrams(
        self, exchange, message_id, *, response, payloads: list[Payload], zero_spi=False
    ) -> tuple[bytes, ...]:
        """The message's datagrams: one, or its SKF fragments (RFC 7383 §2.5)."""
        limit = self.fragments.limit(self.fragment_policy, self.local, self.remote)
        packets = self._protect(exchange, message_id, response, payloads, zero_spi, limit)
        if len(packets) > 1:
            self.count("fragmented_messages_sent")
        return packets

    def _protect(self, exchange, message_id, response, payloads, zero_spi, limit):
        flags = (FLAG_INITIATOR if self.initiator else 0) | (FLAG_RESPONSE if response else 0)
        msg = Message(self.spi_i, bytes(8) if zero_spi else self.spi_r, exchange, flags, message_id)
        return self.sk.protect(msg, payloads, keep_init=not zero_spi, max_message=limit)

    def unprotect(self, raw: bytes, msg: Message) -> list[Payload]:
        return self.sk.unprotect(raw, msg)

    def open(self, raw: bytes, msg: Message, now: float) -> Opened | None:
        """Verify and decrypt; a fragment is kept until its message is complete (None)."""
        if isinstance(msg.encrypted, EncryptedFragmentPayload):
            return self.fragments.open(raw, msg, self.sk.open_fragment, self.fragment_policy, now)
        return raw, msg, self.sk.unprotect(raw, msg)

    def send(
        self, packets: tuple[bytes, ...], now: float, path: tuple[Address, Address] | None = None
    ) -> None:
        """Send a message's datagrams from our address to the peer's, or along ``path`` (a
        response goes back to where its request came from, §2.11). Liveness notes them
        at ``now``, the time the exchange records as sent: an answer proves exactly
        what went out until then (stamped later, by the daemon's loop, our own request
        looked unproven and every tunnel checked on its own clock)."""
        self.liveness.sent(now)
        local, remote = path or (self.local, self.remote)
        for packet in packets:
            self.manager.queue_datagram(packet, local, remote, self)

    def responder_tasks(self, inbound: Inbound) -> list[Task]:
        return exchanges.classify(self, inbound)

    def authenticated_inbound(self, src: Address, dst: Address, now: float) -> None:
        """A message passed integrity checks (or is IKE_SA_INIT): proof of life.
        Behind a NAT the peer's address or port may change; follow it (§2.23) — but not
        with MOBIKE, where only UPDATE_SA_ADDRESSES moves an IKE SA (RFC 4555 §3.5)."""
        self.liveness.sign_of_life(now)
        if self.state is IkeState.CONNECTING:
            self.local, self.remote = dst, src
        elif self.udp_encap and not self.mobility.enabled:
            self.update_hosts(dst, src)

    def esp_from(self, source: Address) -> None:
        """Authenticated ESP that advanced its replay window came from ``source``: the NAT
        in front of the peer remapped it. Send there from now on, IKE too, as §2.23 does
        for IKE messages (a peer that answers liveness checks while its ESP is sent to
        the old mapping would stay dead)."""
        if self.state is IkeState.ESTABLISHED and self.nat_remote and source != self.remote:
            self.count("peer_moved_by_esp")
            self.update_hosts(self.local, source)

    def update_hosts(
        self, local: Address, remote: Address, nat: tuple[bool, bool] | None = None
    ) -> None:
        """Move to ``local``/``remote`` (and the NAT state ``nat``, in front of us and of
        the peer); the CHILD SAs follow (an event for the data plane)."""
        before = (self.local, self.remote, self.udp_encap)
        self.local, self.remote = local, remote
        if nat is not None:
            self.nat_local, self.nat_remote = nat
        if (self.local, self.remote, self.udp_encap) == before or self.finished:
            return
        self.count("endpoint_changes")
        spis = tuple(child.spi_in for child in self.children)
        self.emit(SaEndpointsChanged(self.name, self.spi_i, local, remote, self.udp_encap, spis))

    def local_addresses_changed(
        self, addresses: tuple[str, ...], source_for: SourceFor | None, now: float
    ) -> None:
        """The host's addresses changed: with MOBIKE, move if ours is gone (RFC 4555)."""
        roam(self, addresses, source_for, now)

    def nat_detected(self, local: bool, remote: bool) -> None:
        self.nat_local, self.nat_remote = local, remote

    def float_to_natt_port(self, natt_supported: bool = False) -> None:
        """§2.23: once a NAT is detected (or encapsulation forced) move IKE to port 4500;
        with MOBIKE configured, also without a NAT if the peer does NAT-T (as strongSwan
        does: there is no later exchange to float in when a NAT appears)."""
        mobike = self.connection is not None and self.connection.mobike
        if not self.udp_encap and not (mobike and natt_supported):
            return
        port = self.manager.natt_port
        self.local = (self.local[0], port)
        if self.remote[1] == IKE_PORT:
            self.remote = (self.remote[0], port)

    def crash_report(self, msg: Message, now: float) -> None:
        """An unprotected INVALID_IKE_SPI for this SA: believed only with the peer's QCD
        token (RFC 6290), otherwise dropped and counted (anyone can forge it)."""
        if not crash_reported(msg, self.peer_qcd_token):
            raise Dropped("unauthenticated", "unprotected message without a valid QCD token")
        self.count("qcd_crashes_detected")
        self.peer_dead("the peer restarted and lost the IKE SA (QCD token)", now)

    def no_response(self, reason: str, now: float) -> None:
        """Retransmissions exhausted: setup fails; an established peer is dead."""
        if self.state is IkeState.ESTABLISHED:
            self.peer_dead(self.liveness.verdict(now) if self.liveness.probing else reason, now)
        elif self.state is IkeState.DELETING:
            self.deleted(by_peer=False, now=now)
        else:
            self.fail(reason, None, now)

    # --- life cycle --------------------------------------------------------------------------

    def connect(self, now: float, children: list[ChildConfig] | None = None) -> None:
        """IKE_SA_INIT and IKE_AUTH with the first of ``children`` (default: all of the
        connection's); the others follow with CREATE_CHILD_SA."""
        self.child_configs = list(self.connection.children) if children is None else children
        self.state_to(IkeState.CONNECTING)
        self.start(Purpose.IKE_SA_INIT, now)
        self.start(Purpose.IKE_AUTH, now, *self.child_configs[:1])

    def certified(self, certificate: x509.Certificate) -> None:
        """The peer proved its identity with this certificate."""
        self.peer_certificate = certificate

    def established(self, now, local_id, remote_id, peer_qcd_token, initial_contact) -> None:
        """IKE_AUTH completed (§1.2): both identities are proven."""
        self.local_identity, self.remote_identity = local_id, remote_id
        self.peer_qcd_token, self.initial_contact = peer_qcd_token, initial_contact
        self.state_to(IkeState.ESTABLISHED)
        self.established_at = now
        self.renewal.schedule(now, self.connection, lambda: fraction(self.rng))
        if spread := self.policy.first_check_spread:
            self.liveness.head_start = spread * fraction(self.rng)
        for config in self.child_configs[1:]:
            self.children.create(config, now)
        self.manager.on_established(self, now)
        self.emit(
            IkeSaEstablished(
                self.name, self.spi_i, self.spi_r, self.local, self.remote, str(self.sk.suite),
                self.initiator, *self.exported_keys(),
            )
        )  # fmt: skip

    def _end(self, state: IkeState, by_peer: bool, now: float) -> bool:
        """Leave for a final state: the CHILD SAs go with the IKE SA. False if already gone."""
        if self.finished:
            return False
        self.tasks.abort()  # an answer to our request in flight would find nothing to do
        succession.reauth_failed(self, now)
        for entry in self.children.entries():
            self.children.remove(entry, by_peer)
        self.state_to(state)
        return True

    def peer_dead(self, reason: str, now: float) -> None:
        """The detection budget ran out (or the peer evidently lost its state)."""
        if self.finished:
            return
        if self.state is IkeState.DELETING:  # we were closing it anyway: no dpd_action
            self.deleted(by_peer=False, now=now)
            return
        detected_after, direction = self.liveness.declared_dead(now)
        self._end(IkeState.FAILED, False, now)
        action = self.policy.dpd_action
        self.emit(PeerDead(self.name, self.spi_i, reason, detected_after, action, direction.value))
        self.manager.on_peer_dead(self, now)

    def fail(self, reason: str, notify, now: float) -> None:
        if self._end(IkeState.FAILED, False, now):
            self.emit(IkeSaFailed(self.name, self.spi_i, reason, notify))
            self.manager.on_failed(self, now)

    def deleted(self, by_peer: bool, now: float) -> None:
        """Gone. Closed by the peer (its Delete of an established IKE SA we neither delete
        nor renew) the live CHILD SAs get their close_action."""
        closed = (
            by_peer
            and self.state is IkeState.ESTABLISHED
            and self.renewal.phase in (RenewalPhase.IDLE, RenewalPhase.REKEYING)
        )
        children = [e.child.name for e in self.children.entries() if e.phase in LIVE]
        if self._end(IkeState.DELETED, by_peer, now):
            self.emit(IkeSaDeleted(self.name, self.spi_i, self.spi_r, by_peer))
            if closed:
                close_action.ike_closed(self.manager, self, children, now)

    def replaced(self, now: float) -> None:
        """A newer IKE SA with the same peer took over (unique = replace): the peer has
        evidently lost this one, so drop it at once without asking."""
        self.deleted(by_peer=False, now=now)

    def delete(self, now: float) -> None:
        """Delete the IKE SA (and its CHILD SAs) with an INFORMATIONAL exchange."""
        if self.state is not IkeState.ESTABLISHED:
            self.deleted(by_peer=False, now=now)
            return
        self.state_to(IkeState.DELETING)
        self.tasks.cancel_queued()
        self.start(Purpose.DELETE_IKE, now)

    def check_liveness(
        self, now: float, budget: float | None = None, cause: Cause = Cause.IDLE
    ) -> None:
        """Send an empty INFORMATIONAL request (§2.4), its retransmissions spread inside
        ``budget`` (default: dpd_timeout) from the measured RTT."""
        if self.state is not IkeState.ESTABLISHED or self.liveness.probing:
            return
        budget = self.policy.dpd_timeout if budget is None else budget
        waits = self.liveness.probe_started(budget, cause, now, self.policy, self.check_early())
        self.start(Purpose.LIVENESS_CHECK, now, waits=waits)

    def check_early(self) -> float:
        """How early the next check comes: a fraction of ``dpd_delay`` up to
        ``check_spread``, drawn from the injected RNG."""
        return self.policy.check_spread * fraction(self.rng)

    def probe(self, due: Probe, now: float) -> None:
        """A liveness check is due (``PeerLiveness.due``)."""
        self.check_liveness(now, due.budget, due.cause)

    def report_invalid_spi(self, spi: bytes, now: float) -> None:
        """§2.21.4: ESP arrived for an SPI we do not know; ask the peer to fix it."""
        self.start(Purpose.INVALID_SPI_REPORT, now, spi)

    # --- IKE SA renewal (§2.8, §2.18) ---------------------------------------------------------

    def rekey(self, now: float) -> bool:
        """Rekey this IKE SA with CREATE_CHILD_SA (§1.3.2, §2.18); False if it is not
        established or already being renewed."""
        if self.state is not IkeState.ESTABLISHED or not self.renewal.idle:
            return False
        self.renewal.rekey_started()
        self.start(Purpose.REKEY_IKE, now)
        return True

    def reauthenticate(self, now: float) -> IkeSa | None:
        """Make-before-break reauthentication; the new IKE SA, or None if not idle."""
        return succession.reauthenticate(self, now)

    def exchange_completed(self, now: float) -> None:
        """One of our exchanges finished: a reauthentication ends when the new IKE SA is up
        and has nothing more queued (its CHILD SAs exist)."""
        if self.state is IkeState.ESTABLISHED and not self.tasks.has_queued:
            succession.reauthenticated(self, now)

    def inherit(self, old: IkeSa, now: float) -> None:
        """Take the identities, NAT state and RTT of the IKE SA this one rekeys (§2.18) and
        become ESTABLISHED, still without CHILD SAs; message IDs start at 0."""
        self.connection = old.connection
        self.local_identity, self.remote_identity = old.local_identity, old.remote_identity
        self.nat_local, self.nat_remote = old.nat_local, old.nat_remote
        self.mobility.carry_over(old.mobility)
        self.fragments.carry_over(old.fragments)
        self.peer_qcd_token = old.peer_qcd_token
        self.peer_certificate = old.peer_certificate
        self.liveness.carry_over(old.liveness, now)
        self.renewal.reinstated()
        self.state_to(IkeState.CONNECTING)
        self.state_to(IkeState.ESTABLISHED)
        self.established_at = now

    # --- timer ------------------------------------------------------------------------------

    def keepalive_flow(self) -> tuple[tuple[Address, Address] | None, float]:
        """The UDP flow whose NAT mapping this SA needs kept, and how often (RFC 3948
        §2.3): while established behind a NAT with keepalives on (``core.nat_mappings``)."""
        interval = self.policy.nat_keepalive
        if self.nat_local and interval > 0 and self.state is IkeState.ESTABLISHED:
            return (self.local, self.remote), interval
        return None, 0.0

    def get_timer(self) -> float | None:
        state, renewal = self.state, self.renewal
        if state is IkeState.ESTABLISHED:  # called after every event: no lists
            at = earliest(self.tasks.deadline, renewal.linger_until)
            at = earliest(at, self.liveness.deadline(self.policy))
            return earliest(earliest(at, self.children.deadline()), renewal.deadline())
        return None if state in FINAL else earliest(self.tasks.deadline, renewal.linger_until)

    def handle_timer(self, now: float) -> None:
        if self.renewal.linger_until is not None and now >= self.renewal.linger_until:
            self.deleted(by_peer=False, now=now)
            return
        self.tasks.on_timer(now)
        self.established_due(now)

    def established_due(self, now: float) -> None:
        """What liveness, the CHILD SAs' limits and the IKE SA's lifetimes ask for now."""
        while self.state is IkeState.ESTABLISHED and (due := self.liveness.due(now, self.policy)):
            if isinstance(due, Dead):
                self.peer_dead(due.reason, now)
            else:
                self.probe(due, now)
        if self.state is IkeState.ESTABLISHED:
            for due in self.children.due(now):
                self.children.act(due, now)
        if self.state is IkeState.ESTABLISHED and (due := self.renewal.due(now)):
            succession.renew(self, due, now)
