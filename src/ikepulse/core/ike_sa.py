"""One IKE SA: its keys, state, CHILD SAs and task manager (RFC 7296 §1, §2.14)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..crypto.cipher import cipher_for
from ..crypto.errors import CryptoError
from ..crypto.integ import integ_for
from ..crypto.keys import IkeKeys, derive_ike_keys, rekey_skeyseed, skeyseed
from ..crypto.prf import Prf, prf_for
from ..crypto.sk import SkCrypter
from ..wire.buffer import DecodeError
from ..wire.enums import ExchangeType, NotifyType
from ..wire.message import (
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    Message,
    encode_encrypted,
    encode_message,
    open_encrypted,
)
from ..wire.payloads import EncryptedPayload, NotifyPayload, Payload
from . import liveness
from .child_sa import ChildLimits, ChildSa
from .connection import ChildConfig, ConnectionConfig, Identity, RetransmitPolicy
from .errors import Dropped
from .events import (
    Address,
    ChildSaDeleted,
    ChildSaInstalled,
    ChildSaRekeyed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaReauthenticated,
    IkeSaRekeyed,
    PeerDead,
)
from .liveness import (
    Liveness,
    LivenessPolicy,
    RttEstimator,
    dead_at,
    keepalive_due,
    probe_at,
    probe_due,
    probe_waits,
)
from .negotiate import Suite
from .qcd import token_matches
from .state import FINAL, TRANSITIONS, IkeState
from .task import Inbound, Task
from .task_manager import TaskManager, classify_request

if TYPE_CHECKING:
    from .sa_manager import SaManager

IKE_PORT = 500
LINGER = 30.0
"""Seconds a retired IKE SA waits for the peer's delete."""
RETRY_AFTER = (5.0, 15.0)
"""A refused rekey (TEMPORARY_FAILURE, §2.25, or any other error) is retried after this
many seconds."""


class IkeSa:
    """State of one IKE SA. Created by ``SaManager``; driven by its task manager."""

    def __init__(
        self,
        manager: SaManager,
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
        self.last_inbound = now
        self.last_outbound = now
        self.rtt = RttEstimator()
        self.liveness = Liveness.ALIVE
        self.probes_sent = 0
        self.probes_unanswered = 0
        self.detected_after: float | None = None
        self.peer_qcd_token: bytes | None = None
        self.suite: Suite | None = None
        self.prf: Prf | None = None
        self.keys: IkeKeys | None = None
        self.nonce_i = self.nonce_r = b""
        self.sent_init = self.received_init = b""
        self.nat_local = self.nat_remote = False
        self.local_identity: Identity | None = None
        self.remote_identity: Identity | None = None
        self.children: list[ChildSa] = []
        self.child_limits: dict[bytes, ChildLimits] = {}
        """Per inbound SPI: when to rekey and when to close the CHILD SA."""
        self.rekeying: set[bytes] = set()
        self.rekeying_ike = False
        self.deleting_children: set[bytes] = set()
        self.rekey_collisions: dict[bytes, tuple[bytes, bytes]] = {}
        """Old inbound SPI -> (peer's Ni, our Nr) of a rekey we answered while rekeying
        the same CHILD SA ourselves (§2.8.1)."""
        self.deleted_while_rekeying: set[bytes] = set()
        """Inbound SPIs of CHILD SAs the peer deleted while our rekey of them was in flight."""
        self.ike_rekey_collision: tuple[IkeSa, bytes] | None = None
        """The IKE SA we created answering the peer's rekey while ours was in flight, and
        the lower nonce of that exchange (§2.8.2)."""
        self.linger_until: float | None = None
        """A retired or pending IKE SA is forgotten at this time unless the peer acts."""
        self.ike_rekey_at: float | None = None
        self.ike_reauth_at: float | None = None
        self.ike_expires_at: float | None = None
        self.child_configs: list[ChildConfig] = []
        """Initiator: the CHILD SAs to create, the first one in IKE_AUTH."""
        self.reauth_of: IkeSa | None = None
        """The IKE SA this one reauthenticates; deleted once this one and its CHILD SAs are up."""
        self.reauthenticating: IkeSa | None = None
        """The new IKE SA that reauthenticates this one."""
        self.initial_contact = False
        """Responder: the peer said it holds no other IKE SA with us (§2.4)."""
        self._crypter_in: SkCrypter | None = None
        self._crypter_out: SkCrypter | None = None
        self.tasks = TaskManager(self)

    # --- identity and policy ----------------------------------------------------------------

    @property
    def local_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    @property
    def name(self) -> str:
        return self.connection.name if self.connection else ""

    @property
    def label(self) -> str:
        """``name[spi_i]`` for log lines."""
        return f"{self.name or '?'}[{self.spi_i.hex()}]"

    @property
    def retransmit(self) -> RetransmitPolicy:
        config = self.connection or self.candidates[0]
        return config.retransmit

    def select_connection(self, connection: ConnectionConfig) -> None:
        self.connection = connection

    def state_to(self, new: IkeState) -> None:
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise AssertionError(f"IKE SA state {self.state.name} -> {new.name} is not allowed")
        self.state = new

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    # --- keys (§2.14) ------------------------------------------------------------------------

    def derive_keys(
        self,
        suite: Suite,
        shared: bytes,
        nonce_i: bytes,
        nonce_r: bytes,
        rekeyed: IkeSa | None = None,
    ) -> None:
        """§2.14 keys; for a rekey (§2.18) SKEYSEED comes from the old SA's SK_d."""
        self.suite, self.nonce_i, self.nonce_r = suite, nonce_i, nonce_r
        self.prf = prf_for(suite.prf)
        cipher = cipher_for(*suite.encr)
        integ = integ_for(suite.integ) if suite.integ is not None else None
        integ_size = integ.key_size if integ else 0
        if rekeyed is None:
            seed = skeyseed(self.prf, nonce_i, nonce_r, shared)
        else:
            seed = rekey_skeyseed(rekeyed.prf, rekeyed.keys.sk_d, shared, nonce_i, nonce_r)
        keys = derive_ike_keys(
            self.prf, seed, nonce_i, nonce_r, self.spi_i, self.spi_r, cipher.key_size, integ_size
        )
        self.keys = keys
        out_keys = (keys.sk_ei, keys.sk_ai) if self.initiator else (keys.sk_er, keys.sk_ar)
        in_keys = (keys.sk_er, keys.sk_ar) if self.initiator else (keys.sk_ei, keys.sk_ai)
        self._crypter_out = SkCrypter(cipher, integ, *out_keys)
        self._crypter_in = SkCrypter(cipher, integ, *in_keys)

    # --- messages -----------------------------------------------------------------------------

    def encode(
        self,
        exchange: ExchangeType,
        message_id: int,
        *,
        response: bool,
        payloads: list[Payload],
        zero_spi: bool = False,
    ) -> bytes:
        flags = (FLAG_INITIATOR if self.initiator else 0) | (FLAG_RESPONSE if response else 0)
        spi_r = bytes(8) if zero_spi else self.spi_r
        msg = Message(self.spi_i, spi_r, exchange, flags, message_id)
        if exchange == ExchangeType.IKE_SA_INIT:
            data = encode_message(replace(msg, payloads=tuple(payloads)))
            if not zero_spi:
                self.sent_init = data
            return data
        crypter = self._crypter_out
        return encode_encrypted(msg, payloads, crypter, self.rng.randbytes(crypter.iv_size))

    def unprotect(self, raw: bytes, msg: Message) -> list[Payload]:
        """Verify and decrypt; the inner payloads (empty for IKE_SA_INIT). Raises Dropped."""
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            if msg.encrypted is not None:
                raise Dropped("malformed", "encrypted IKE_SA_INIT")
            self.received_init = raw
            return []
        if self._crypter_in is None:
            raise Dropped("unauthenticated", f"{msg.exchange.name} before keys exist")
        if not isinstance(msg.encrypted, EncryptedPayload):
            raise Dropped("unauthenticated", f"{msg.exchange.name} without an SK payload")
        try:
            return open_encrypted(raw, msg, self._crypter_in)
        except CryptoError as exc:
            raise Dropped("invalid_icv", f"SK payload does not verify: {exc}") from exc
        except DecodeError as exc:
            raise Dropped("malformed", f"decrypted payloads: {exc}") from exc

    def send(self, packet: bytes) -> None:
        self.manager.queue_datagram(packet, self.local, self.remote, self)

    def responder_tasks(self, inbound: Inbound) -> list[Task]:
        return classify_request(self, inbound)

    def authenticated_inbound(self, src: Address, dst: Address, now: float) -> None:
        """A message passed integrity checks (or is IKE_SA_INIT): proof of life.

        Behind a NAT the peer's address or port may change; follow it (§2.23).
        """
        self.sign_of_life(now)
        if self.nat_local or self.nat_remote or self.state is IkeState.CONNECTING:
            self.local, self.remote = dst, src

    def observe_rtt(self, rtt: float, retransmits: int) -> None:
        """Round trips of exchanges answered without retransmission (Karn's rule)."""
        if retransmits == 0:
            self.rtt.observe(rtt)

    # --- liveness (§2.4, DESIGN.md §4) ------------------------------------------------------

    @property
    def policy(self) -> LivenessPolicy:
        return (self.connection or self.candidates[0]).liveness

    def sign_of_life(self, now: float) -> None:
        """An authenticated IKE message or an inbound ESP packet: the peer is alive."""
        self.last_inbound = max(self.last_inbound, now)
        self.probes_unanswered = 0
        if self.liveness is Liveness.PROBING:
            self.liveness = Liveness.ALIVE

    def esp_activity(self, last_inbound: float | None, last_outbound: float | None) -> None:
        """Per-CHILD SA traffic times from the data plane (traffic is proof of life)."""
        if last_inbound is not None and last_inbound > self.last_inbound:
            self.sign_of_life(last_inbound)
        if last_outbound is not None:
            self.last_outbound = max(self.last_outbound, last_outbound)

    def _liveness_timer(self) -> float | None:
        if self.state is not IkeState.ESTABLISHED:
            return None
        policy = self.policy
        times = [dead_at(self.last_inbound, policy)]
        if self.liveness is Liveness.ALIVE:
            times.append(probe_at(self.last_inbound, policy))
        if self.nat_local and policy.nat_keepalive > 0:
            times.append(self.last_outbound + policy.nat_keepalive)
        return min((t for t in times if t is not None), default=None)

    def _check_liveness(self, now: float) -> None:
        policy = self.policy
        deadline = dead_at(self.last_inbound, policy)
        if deadline is not None and now >= deadline:
            self.peer_dead(f"no sign of life for {now - self.last_inbound:.1f}s", now)
            return
        if self.liveness is Liveness.ALIVE and probe_due(now, self.last_inbound, policy):
            self.check_liveness(now, budget=deadline - now)
        if keepalive_due(now, self.last_outbound, self.nat_local, policy.nat_keepalive):
            self.manager.queue_keepalive(self)
            self.last_outbound = now

    def peer_dead(self, reason: str, now: float) -> None:
        """The detection budget ran out (or the peer evidently lost its state)."""
        if self.finished:
            return
        self.liveness = Liveness.DEAD
        self.detected_after = now - self.last_inbound
        self.tasks.queue.clear()
        self.tasks.active = None
        self._reauth_failed(now)
        self._drop_children(by_peer=False)
        self.state_to(IkeState.FAILED)
        action = self.policy.dpd_action
        self.emit(PeerDead(self.name, self.spi_i, reason, self.detected_after, action.value))
        self.manager.on_peer_dead(self, now)

    def crash_report(self, msg: Message, now: float) -> None:
        """An unprotected INVALID_IKE_SPI for this SA: believed only with the peer's QCD
        token (RFC 6290), otherwise dropped and counted (anyone can forge it)."""
        token = next(
            (
                p.data
                for p in msg.payloads
                if isinstance(p, NotifyPayload) and p.type == NotifyType.QUICK_CRASH_DETECTION
            ),
            b"",
        )
        reported = any(
            isinstance(p, NotifyPayload) and p.type == NotifyType.INVALID_IKE_SPI
            for p in msg.payloads
        )
        if not reported or not token_matches(self.peer_qcd_token, token):
            raise Dropped("unauthenticated", "unprotected message without a valid QCD token")
        self.manager.counters["qcd_crashes_detected"] += 1
        self.peer_dead("the peer restarted and lost the IKE SA (QCD token)", now)

    def no_response(self, reason: str, now: float) -> None:
        """Retransmissions exhausted: setup fails; an established peer is dead."""
        if self.state is IkeState.ESTABLISHED:
            self.peer_dead(reason, now)
        elif self.state is IkeState.DELETING:
            self.deleted(by_peer=False, now=now)
        else:
            self.fail(reason, None, now)

    def float_to_natt_port(self) -> None:
        """§2.23: once a NAT is detected (or encapsulation forced) move IKE to port 4500."""
        if not (self.nat_local or self.nat_remote):
            return
        port = self.manager.natt_port
        self.local = (self.local[0], port)
        if self.remote[1] == IKE_PORT:
            self.remote = (self.remote[0], port)

    # --- life cycle --------------------------------------------------------------------------

    def emit(self, event) -> None:
        self.manager.emit(event)

    def _schedule_ike_lifetimes(self, now: float, reauth_at: float | None = None) -> None:
        """rekey_time and reauth_time (unless ``reauth_at`` carries over from the IKE SA this
        one rekeys), each less a random part up to rand_time; the IKE SA expires over_time
        after the earlier of the two (§2.8)."""
        connection = self.connection
        self.ike_rekey_at = self._jittered(now, connection.rekey_time)
        self.ike_reauth_at = reauth_at or self._jittered(now, connection.reauth_time)
        renewals = [] if self.ike_reauth_at is None else [self.ike_reauth_at]
        if connection.rekey_time > 0:
            renewals.append(now + connection.rekey_time)
        self.ike_expires_at = min(renewals) + connection.ike_over_time if renewals else None

    def _jittered(self, now: float, interval: float) -> float | None:
        """``now + interval`` less a random part up to rand_time, but never more than half
        of ``interval`` (the default rand_time follows the longer of rekey and reauth)."""
        if interval <= 0:
            return None
        fraction = int.from_bytes(self.rng.randbytes(2), "big") / 0x10000
        return now + interval - min(self.connection.ike_jitter, interval / 2) * fraction

    def established(self, now: float) -> None:
        self.state_to(IkeState.ESTABLISHED)
        self.established_at = now
        self._schedule_ike_lifetimes(now)
        for config in self.child_configs[1:]:
            self.create_child(config, now)
        self.manager.on_established(self, now)
        self.emit(
            IkeSaEstablished(
                self.name,
                self.spi_i,
                self.spi_r,
                self.local,
                self.remote,
                str(self.suite),
                self.initiator,
            )
        )

    def install_child(
        self,
        child: ChildSa,
        now: float,
        replaces: ChildSa | None = None,
        initiated: bool | None = None,
        outbound: bool = True,
    ) -> None:
        """Install a CHILD SA; ``initiated`` is our role in the exchange that made it (it
        orders the keys, §2.17), ``replaces`` the CHILD SA it rekeys. Without ``outbound``
        it only receives (a redundant SA of a rekey collision, deleted next)."""
        initiated = self.initiator if initiated is None else initiated
        child = replace(child, installed_at=now)
        self.children.append(child)
        limits = self._limits_for(self.connection.child(child.name), now)
        self.child_limits[child.spi_in] = limits
        if replaces is not None and replaces in self.children:
            self.rekeying.discard(replaces.spi_in)
            self.child_limits[replaces.spi_in].rekeyed()
        succeeds = replaces
        if replaces is None and not initiated:
            succeeds = self._copy_of(child)
        suite = child.suite
        self.emit(
            ChildSaInstalled(
                connection=self.name,
                child=child.name,
                spi_in=child.spi_in,
                spi_out=child.spi_out,
                proposal=str(suite),
                encr=suite.encr,
                integ=suite.integ,
                esn=bool(suite.esn),
                keys=child.keys,
                initiator=initiated,
                local_ts=child.local_ts,
                remote_ts=child.remote_ts,
                mode=child.mode,
                udp_encap=self.nat_local or self.nat_remote,
                local=self.local,
                remote=self.remote,
                replaces=None if succeeds is None else succeeds.spi_in,
                defer_outbound=(succeeds is not None and not initiated) or not outbound,
                limits=replace(limits),
            )
        )
        if replaces is not None:
            self.emit(ChildSaRekeyed(self.name, child.name, replaces.spi_in, child.spi_in))

    def _copy_of(self, child: ChildSa) -> ChildSa | None:
        """The CHILD SA of another IKE SA to the same peer that ``child`` duplicates: the
        peer reauthenticates make-before-break and deletes the old IKE SA next."""
        same = (child.name, child.local_ts, child.remote_ts)
        for other in self.manager.siblings(self):
            for old in other.children:
                if (old.name, old.local_ts, old.remote_ts) == same:
                    return old
        return None

    def adopt(self, old: IkeSa, now: float) -> None:
        """Take the identities, NAT state and RTT of the IKE SA this one rekeys (§2.18) and
        become ESTABLISHED, still without CHILD SAs; message IDs start at 0."""
        self.connection = old.connection
        self.local_identity, self.remote_identity = old.local_identity, old.remote_identity
        self.nat_local, self.nat_remote = old.nat_local, old.nat_remote
        self.peer_qcd_token = old.peer_qcd_token
        self.rtt, self.last_inbound, self.last_outbound = old.rtt, now, now
        self.linger_until = None
        self.state_to(IkeState.CONNECTING)
        self.state_to(IkeState.ESTABLISHED)
        self.established_at = now

    def take_over(self, old: IkeSa, now: float) -> None:
        """Become the successor of ``old`` after an IKE SA rekey (§2.18): its CHILD SAs
        and their timers move here."""
        if self.state is not IkeState.ESTABLISHED:
            self.adopt(old, now)
        self.children, old.children = old.children, []
        self.child_limits, old.child_limits = old.child_limits, {}
        self._schedule_ike_lifetimes(now, old.ike_reauth_at)
        self.reauthenticating, old.reauthenticating = old.reauthenticating, None
        if self.reauthenticating is not None:
            self.reauthenticating.reauth_of = self
        self.emit(IkeSaRekeyed(self.name, old.spi_i, old.spi_r, self.spi_i, self.spi_r))

    def retire(self, now: float) -> None:
        """An IKE SA the peer will delete (the old one after the peer rekeyed it, or a
        redundant one of §2.8.2) or one whose fate a rekey collision decides: no probes,
        rekeys or queued requests; forgotten after LINGER unless taken over."""
        self.tasks.queue.clear()
        if self.state is IkeState.ESTABLISHED:
            self.state_to(IkeState.DELETING)
        self.linger_until = now + LINGER

    def lost_rekey_collision(self, now: float) -> None:
        """The peer deletes this IKE SA while both of us rekey it: the peer's new IKE SA
        survived (§2.8.2), so the CHILD SAs move there and our rekey is abandoned."""
        theirs, _ = self.ike_rekey_collision
        self.ike_rekey_collision = None
        self.rekeying_ike = False
        self.tasks.active = None
        if not theirs.finished:
            theirs.take_over(self, now)

    def rekey(self, now: float) -> bool:
        """Rekey this IKE SA with CREATE_CHILD_SA (§1.3.2, §2.18); False if it is not
        established or a rekey of it is under way."""
        from .tasks.ike_rekey import IkeRekey

        if self.state is not IkeState.ESTABLISHED or self.rekeying_ike:
            return False
        self.rekeying_ike = True
        self.tasks.queue_exchange(ExchangeType.CREATE_CHILD_SA, [IkeRekey(self, True)], now)
        return True

    def rekey_child(self, child: ChildSa, now: float) -> bool:
        """CREATE_CHILD_SA with REKEY_SA (§1.3.3); False if a rekey of it is under way."""
        from .tasks.create_child_sa import CreateChildSa

        if child.spi_in in self.rekeying or child not in self.children:
            return False
        self.rekeying.add(child.spi_in)
        config = self.connection.child(child.name)
        self.tasks.queue_exchange(
            ExchangeType.CREATE_CHILD_SA,
            [CreateChildSa(self, True, config, rekey=child)],
            now,
        )
        return True

    def rekey_failed(self, child: ChildSa | None) -> None:
        if child is not None:
            self.rekeying.discard(child.spi_in)
            self.deleted_while_rekeying.discard(child.spi_in)

    def retry_delay(self) -> float:
        low, high = RETRY_AFTER
        return low + (high - low) * int.from_bytes(self.rng.randbytes(2), "big") / 0x10000

    def retry_rekey_child(self, child: ChildSa, now: float) -> None:
        """The peer refused the rekey: try again a little later (§2.25)."""
        if child in self.children:
            self.child_limits[child.spi_in].rekey_at = now + self.retry_delay()

    def create_child(self, config: ChildConfig, now: float) -> None:
        """A new CHILD SA with CREATE_CHILD_SA (§1.3.1)."""
        from .tasks.create_child_sa import CreateChildSa

        self.tasks.queue_exchange(
            ExchangeType.CREATE_CHILD_SA, [CreateChildSa(self, True, config)], now
        )

    def _limits_for(self, config: ChildConfig, now: float) -> ChildLimits:
        fraction = int.from_bytes(self.rng.randbytes(2), "big") / 0x10000
        rekey_after, life = config.time_limits(fraction)
        return ChildLimits(
            None if rekey_after is None else now + rekey_after,
            None if life is None else now + life,
            *config.byte_limits(fraction),
            *config.packet_limits(fraction),
        )

    def _child_timer(self) -> float | None:
        times = [
            t
            for spi, limits in self.child_limits.items()
            for t in ((None if spi in self.rekeying else limits.rekey_at), limits.expires_at)
            if t is not None
        ]
        return min(times, default=None)

    def _check_children(self, now: float) -> None:
        for child in list(self.children):
            limits = self.child_limits[child.spi_in]
            if limits.expires_at is not None and now >= limits.expires_at:
                self._expire_child(child, now)
            elif limits.rekey_at is not None and now >= limits.rekey_at:
                self.rekey_child(child, now)

    def _expire_child(self, child: ChildSa, now: float) -> None:
        """A hard lifetime ran out before a rekey replaced the CHILD SA."""
        self.child_limits[child.spi_in] = ChildLimits()
        self.delete_child(child, now)

    def esp_usage(self, spi_in: bytes, octets: int, packets: int, now: float) -> None:
        """Bytes and packets of a CHILD SA's busier direction, from the data plane:
        ``rekey_bytes``/``rekey_packets`` start a rekey, ``life_*`` close it."""
        child = next((c for c in self.children if c.spi_in == spi_in), None)
        if child is None or self.state is not IkeState.ESTABLISHED:
            return
        reached = self.child_limits[spi_in].volume(octets, packets)
        if reached == "life":
            self._expire_child(child, now)
        elif reached == "rekey":
            self.rekey_child(child, now)

    def remove_child(self, child: ChildSa, by_peer: bool) -> None:
        if child in self.children:
            if by_peer and child.spi_in in self.rekeying:
                self.deleted_while_rekeying.add(child.spi_in)
            self.children.remove(child)
            self.child_limits.pop(child.spi_in, None)
            self.rekeying.discard(child.spi_in)
            self.deleting_children.discard(child.spi_in)
            self.rekey_collisions.pop(child.spi_in, None)
            self.manager.release_esp_spi(child.spi_in)
            self.emit(ChildSaDeleted(self.name, child.name, child.spi_in, child.spi_out, by_peer))

    def _drop_children(self, by_peer: bool) -> None:
        for child in list(self.children):
            self.remove_child(child, by_peer)

    def fail(self, reason: str, notify, now: float) -> None:
        if self.finished:
            return
        self._reauth_failed(now)
        self._drop_children(by_peer=False)
        self.state_to(IkeState.FAILED)
        self.emit(IkeSaFailed(self.name, self.spi_i, reason, notify))
        self.manager.on_failed(self, now)

    def replaced(self, now: float) -> None:
        """A newer IKE SA with the same peer took over (unique = replace): the peer has
        evidently lost this one, so drop it at once without asking."""
        self.tasks.queue.clear()
        self.tasks.active = None
        self.deleted(by_peer=False, now=now)

    def deleted(self, by_peer: bool, now: float) -> None:
        if self.finished:
            return
        self._reauth_failed(now)
        self._drop_children(by_peer)
        self.state_to(IkeState.DELETED)
        self.emit(IkeSaDeleted(self.name, self.spi_i, self.spi_r, by_peer))

    # --- actions -----------------------------------------------------------------------------

    def connect(self, now: float, children: list[ChildConfig] | None = None) -> None:
        """IKE_SA_INIT and IKE_AUTH with the first of ``children`` (default: all of the
        connection's); the others follow with CREATE_CHILD_SA."""
        from .tasks.ike_auth import IkeAuth
        from .tasks.ike_auth_child import IkeAuthChild
        from .tasks.ike_init import IkeInit
        from .tasks.natd import NatDetection

        self.child_configs = list(self.connection.children) if children is None else children
        self.state_to(IkeState.CONNECTING)
        self.tasks.queue_exchange(
            ExchangeType.IKE_SA_INIT, [IkeInit(self, True), NatDetection(self, True)], now
        )
        auth: list[Task] = [IkeAuth(self, True)]
        if self.child_configs:
            auth.append(IkeAuthChild(self, True, self.child_configs[0]))
        self.tasks.queue_exchange(ExchangeType.IKE_AUTH, auth, now)

    def reauthenticate(self, now: float) -> IkeSa | None:
        """Make-before-break reauthentication: a new IKE SA from scratch (IKE_SA_INIT,
        IKE_AUTH) with this one's CHILD SAs; this one is deleted once they are up."""
        if self.state is not IkeState.ESTABLISHED or self.reauthenticating is not None:
            return None
        self.ike_rekey_at = self.ike_reauth_at = None
        connection = self.connection
        names = dict.fromkeys(child.name for child in self.children)
        children = [connection.child(name) for name in names] or list(connection.children)
        self.reauthenticating = self.manager.initiate(
            self.name,
            (self.local[0], connection.local_port),
            (self.remote[0], connection.remote_port),
            now,
            children=children,
            reauth_of=self,
        )
        return self.reauthenticating

    def exchange_completed(self, now: float) -> None:
        """One of our exchanges finished: a reauthentication ends when the new IKE SA is up
        and has nothing more queued (its CHILD SAs exist), by deleting the old one."""
        old = self.reauth_of
        if old is None or self.state is not IkeState.ESTABLISHED or self.tasks.queue:
            return
        self.reauth_of = old.reauthenticating = None
        self.emit(IkeSaReauthenticated(self.name, old.spi_i, self.spi_i))
        old.delete(now)

    def _reauth_failed(self, now: float) -> None:
        """This SA, reauthenticating ``reauth_of``, ended before taking over: the old one
        tries again a little later."""
        old = self.reauth_of
        if old is not None and old.reauthenticating is self:
            self.reauth_of = old.reauthenticating = None
            old.ike_reauth_at = now + old.retry_delay()

    def delete(self, now: float) -> None:
        """Delete the IKE SA (and its CHILD SAs) with an INFORMATIONAL exchange."""
        from .tasks.informational import IkeDelete

        if self.state is not IkeState.ESTABLISHED:
            self.deleted(by_peer=False, now=now)
            return
        self.state_to(IkeState.DELETING)
        self.tasks.queue.clear()
        self.tasks.queue_exchange(ExchangeType.INFORMATIONAL, [IkeDelete(self, True)], now)

    def delete_child(self, child: ChildSa, now: float) -> None:
        from .tasks.informational import ChildDelete

        self.deleting_children.add(child.spi_in)
        self.tasks.queue_exchange(
            ExchangeType.INFORMATIONAL, [ChildDelete(self, True, (child.spi_in,))], now
        )

    def check_liveness(self, now: float, budget: float | None = None) -> None:
        """Send an empty INFORMATIONAL request (§2.4), its retransmissions spread inside
        ``budget`` (default: dpd_timeout) from the measured RTT."""
        from .tasks.informational import LivenessCheck

        if self.state is not IkeState.ESTABLISHED or self.liveness is Liveness.PROBING:
            return
        self.liveness = Liveness.PROBING
        self.probes_sent += 1
        self.probes_unanswered += 1
        budget = self.policy.dpd_timeout if budget is None else budget
        waits = probe_waits(self.rtt.rto, max(budget, liveness.MIN_RTO))
        self.tasks.queue_exchange(
            ExchangeType.INFORMATIONAL, [LivenessCheck(self, True)], now, waits=waits
        )

    def report_invalid_spi(self, spi: bytes, now: float) -> None:
        """§2.21.4: ESP arrived for an SPI we do not know; ask the peer to fix it."""
        from .tasks.informational import InvalidSpiReport

        self.tasks.queue_exchange(
            ExchangeType.INFORMATIONAL, [InvalidSpiReport(self, True, spi)], now
        )

    def get_timer(self) -> float | None:
        if self.finished:
            return None
        candidates = (
            self.tasks.deadline,
            self._liveness_timer(),
            self._established_timer(),
            self.linger_until,
        )
        return min((t for t in candidates if t is not None), default=None)

    def _established_timer(self) -> float | None:
        if self.state is not IkeState.ESTABLISHED:
            return None
        rekey_at = None if self.rekeying_ike else self.ike_rekey_at
        times = (self._child_timer(), rekey_at, self.ike_reauth_at, self.ike_expires_at)
        return min((t for t in times if t is not None), default=None)

    def _check_lifetime(self, now: float) -> None:
        if self.ike_expires_at is not None and now >= self.ike_expires_at:
            self.ike_expires_at = None
            self.delete(now)  # could not be rekeyed within over_time (§2.8)
        elif self.ike_reauth_at is not None and now >= self.ike_reauth_at:
            self.ike_reauth_at = None
            self.reauthenticate(now)
        elif self.ike_rekey_at is not None and now >= self.ike_rekey_at:
            self.ike_rekey_at = None
            self.rekey(now)

    def handle_timer(self, now: float) -> None:
        if self.linger_until is not None and now >= self.linger_until:
            self.tasks.active = None
            self.deleted(by_peer=False, now=now)
            return
        self.tasks.on_timer(now)
        if self.state is IkeState.ESTABLISHED:
            self._check_liveness(now)
        if self.state is IkeState.ESTABLISHED:
            self._check_children(now)
        if self.state is IkeState.ESTABLISHED:
            self._check_lifetime(now)
