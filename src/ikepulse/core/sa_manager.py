"""The sans-IO entry point: SPI demultiplexing, responder SAs (admitted by ``core.gate``), outputs.

The runtime feeds datagrams in with ``receive_datagram(data, src, dst, now)``, pulls
``datagrams_to_send()``, arms one timer at ``get_timer()`` and calls ``handle_timer(now)``,
and drains ``next_event()`` (DESIGN.md §3.2).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable

from ..wire.buffer import DecodeError
from ..wire.enums import ExchangeType
from ..wire.isakmp import isakmp_version
from ..wire.message import (
    Message,
    decode_message,
)
from . import reconcile
from .admission import DEFAULT_POLICY, Admission, AdmissionPolicy, creates_sa
from .connection import ChildConfig, ConnectionConfig
from .connection_index import Connections
from .datagram import Datagram, EspActivity
from .errors import Dropped
from .events import Address, Event
from .gate import Gate
from .ike_sa import IkeSa
from .ikev1.intake import V1Intake
from .ikev1.isakmp_sa import IsakmpSa
from .liveness import earliest
from .mobility import SourceFor
from .nat_mappings import NAT_KEEPALIVE
from .qcd import ReportLimits, crash_answer
from .randomness import Rng
from .reload import diff_connections
from .restarts import Restarts
from .sa_index import SaTable
from .sa_relations import SaRelations
from .state import IkeState
from .status import ike_sa_status

NATT_PORT = 4500
CLOSED_ANSWERS_KEPT = 30.0
"""Seconds a deleted IKE SA still answers retransmitted requests from its cache."""


class SaManager(SaRelations):
    """All IKE SAs of one daemon, keyed by our local IKE SPI."""

    def __init__(
        self,
        connections: tuple[ConnectionConfig, ...] | list[ConnectionConfig],
        rng: Rng,
        *,
        admission: AdmissionPolicy | None = None,
        natt_port: int = NATT_PORT,
        qcd_secret: bytes | None = None,
        wall_offset: float = 0.0,
        export_keys: bool = False,
        esp_vnet: bool = False,
    ) -> None:
        """``qcd_secret`` should survive restarts (RFC 6290); without one, a fresh one is
        drawn and crash reports after a restart are not believed by peers. ``wall_offset``
        turns ``now`` into Unix time, for certificate validity. ``export_keys``: IKE keys in
        ``IkeSaEstablished``/``IkeSaRekeyed`` (for Wireshark). ``esp_vnet``: offer and accept
        TUN super-packets in one ESP packet on tunnel-mode CHILD SAs (esp/vnet.py)."""
        self.connections = tuple(connections)
        self.rng = rng
        self.wall_offset = wall_offset
        self.export_keys = export_keys
        self.esp_vnet = esp_vnet
        self.natt_port = natt_port
        self.counters: Counter[str] = Counter()
        self.sas: SaTable = SaTable()
        self._closed: OrderedDict[bytes, tuple[IkeSa, float]] = OrderedDict()
        """Deleted SAs still answering retransmits, oldest first (O(1) to find the oldest,
        which a dict with its front deleted over and over is not)."""
        self._esp_spis: set[bytes] = set()
        self._outbox: list[tuple[Datagram, IkeSa | None]] = []
        self.restarts = Restarts()
        self.reconciler = reconcile.Reconciler()
        self._events: deque[Event] = deque()
        self.gate = Gate(
            self, admission or DEFAULT_POLICY, rng, self.counters, known=self._configured_peer
        )
        """Who gets a responder SA, and the half-open ones (RFC 7296 §2.6, RFC 8019)."""
        self.qcd_secret = qcd_secret or rng.randbytes(32)
        self._reports = ReportLimits()
        self.v1 = V1Intake(self)
        self.local_addresses: tuple[str, ...] = ()
        """The host's usable addresses, as the runtime last reported them (MOBIKE lists
        them to peers and moves to one of them, RFC 4555)."""

    @property
    def admission(self) -> Admission:
        """The IKEv2 admission policy and state (cookies, rates, caps)."""
        return self.gate.v2

    @property
    def connections(self) -> tuple[ConnectionConfig, ...]:
        return self._connections.all

    @connections.setter
    def connections(self, connections: Iterable[ConnectionConfig]) -> None:
        self._connections = Connections(connections)

    def _configured_peer(self, address: str) -> bool:
        return address in self._connections.peers

    def matching(self, remote: str, local: str, version: int) -> tuple[ConnectionConfig, ...]:
        """The connections of IKE ``version`` that admit a new SA from ``remote`` to ``local``."""
        return self._connections.matching(remote, local, version)

    # --- outputs -----------------------------------------------------------------------------

    def queue_datagram(
        self, data: bytes, src: Address, dst: Address, sa: IkeSa | None = None
    ) -> None:
        self._outbox.append((Datagram(data, src, dst), sa))

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        """What to send now, with a NAT-T keepalive on each flow that nothing else refreshed
        for its interval (RFC 3948 §2.3, ``core.nat_mappings``)."""
        out, self._outbox = self._outbox, []
        flows = self.sas.flows
        for datagram, sa in out:
            if sa is not None:  # not a cookie or refusal to an unknown, maybe spoofed, source
                flows.carried(datagram.src, datagram.dst, now)
                self.sas.touch(sa)  # its liveness noted the send
        sending = [datagram for datagram, _ in out]
        if (deadline := flows.deadline()) is not None and deadline <= now:
            for src, dst in flows.due(now):
                self.counters["natt_keepalives_sent"] += 1
                sending.append(Datagram(NAT_KEEPALIVE, src, dst, keepalive=True))
        return sending

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _replan(self) -> None:
        """The reconciler plans again for the connections whose SAs changed."""
        changed, stale = self.sas.take_changed(), self.reconciler.take_stale()
        for name in changed | stale if stale else changed:
            self.reconciler.replan(name, self.sas.up(name))

    def get_timer(self) -> float | None:
        """The earliest deadline, from the index: SAs nothing touched are not asked."""
        self._replan()
        at = earliest(self.sas.next_deadline(), self.sas.flows.deadline())
        at = earliest(at, self.restarts.deadline())
        return earliest(earliest(at, self.reconciler.deadline()), self.gate.deadline())

    def handle_timer(self, now: float) -> None:
        """Wake the SAs whose deadline has come (``counters['timer_wakeups']``), only those."""
        sas = self.sas
        for sa in sas.pop_due(now):
            if sas.touched(sa):  # by an SA served before it: its deadline may have moved
                deadline = sa.get_timer()
                if deadline is None or deadline > now:
                    continue
            self.counters["timer_wakeups"] += 1
            sa.handle_timer(now)
            sas.touch(sa)
        for name, restart in self.restarts.due(now):
            if self.find(name) or name not in self._connections.by_name:  # or reloaded away
                self.restarts.end(name)
            else:
                children = restart.configs(self.connection(name))
                self.initiate(name, restart.local, restart.remote, now, children)
        self._replan()
        for sa in self.reconciler.act(self.counters, now):
            self.sas.touch(sa)
        self.gate.expire(now)
        self._reap(now)

    def esp_activity(self, activity: Iterable[EspActivity]) -> None:
        """The data plane's traffic times per CHILD SA, fed in before ``handle_timer``; only
        changed times touch their IKE SA."""
        seen = self.sas.esp_seen
        for spi_in, *times in activity:
            if seen.get(spi_in) != times and (sa := self._owner_of(spi_in)) is not None:
                seen[spi_in] = times
                sa.liveness.esp_activity(*times)
                self.sas.touch(sa)

    def esp_peer_moved(self, spi_in: bytes, source: Address) -> None:
        """Authenticated, new ESP on ``spi_in`` came from a new address or port."""
        sa = self._owner_of(spi_in)
        if sa is not None:
            sa.esp_from(source)
            self.sas.touch(sa)

    def esp_usage(self, spi_in: bytes, octets: int, packets: int, now: float) -> None:
        """A CHILD SA reached a byte or packet count of its ``ChildSaInstalled.limits``."""
        sa = self._owner_of(spi_in)
        if sa is not None and sa.state is IkeState.ESTABLISHED:
            sa.children.act(sa.children.usage(spi_in, octets, packets), now)
            self.sas.touch(sa)

    def _owner_of(self, spi_in: bytes) -> IkeSa | None:
        """The IKE SA holding the CHILD SA with inbound SPI ``spi_in`` (indexed)."""
        return self.sas.owner_of(spi_in)

    # --- SPIs ------------------------------------------------------------------------------

    def new_ike_spi(self) -> bytes:
        while True:
            spi = self.rng.randbytes(8)
            if any(spi) and spi not in self.sas:
                return spi

    def allocate_esp_spi(self) -> bytes:
        """A fresh inbound ESP SPI; values below 256 are reserved (RFC 4303 §2.1)."""
        while True:
            spi = self.rng.randbytes(4)
            if int.from_bytes(spi, "big") >= 256 and spi not in self._esp_spis:
                self._esp_spis.add(spi)
                return spi

    def release_esp_spi(self, spi: bytes) -> None:
        self._esp_spis.discard(spi)

    # --- actions ---------------------------------------------------------------------------

    def connection(self, name: str) -> ConnectionConfig:
        if (connection := self._connections.by_name.get(name)) is None:
            raise KeyError(f"no connection named {name!r}")
        return connection

    def initiate(
        self,
        name: str,
        local: Address,
        remote: Address,
        now: float,
        children: list[ChildConfig] | None = None,
        reauth_of: IkeSa | None = None,
    ) -> IkeSa:
        connection = self.connection(name)
        common = dict(
            initiator=True,
            spi_i=self.new_ike_spi(),
            spi_r=bytes(8),
            local=local,
            remote=remote,
            candidates=(connection,),
            now=now,
        )
        if connection.version == 1:
            sa: IkeSa = IsakmpSa(self, aggressive=connection.aggressive, **common)
        else:
            sa = IkeSa(self, **common)
        self.sas[sa.local_spi] = sa
        sa.renewal.reauth_of = reauth_of
        sa.connect(now, children)
        return sa

    def successor(
        self, old: IkeSa, *, initiator: bool, spi_i: bytes, spi_r: bytes, now: float
    ) -> IkeSa:
        """A new IKE SA that replaces ``old`` after a rekey (§2.18)."""
        sa = IkeSa(
            self,
            initiator=initiator,
            spi_i=spi_i,
            spi_r=spi_r,
            local=old.local,
            remote=old.remote,
            candidates=(old.connection,),
            now=now,
        )
        self.sas[sa.local_spi] = sa
        return sa

    def find(self, name: str) -> list[IkeSa]:
        """The connection's live IKE SAs, oldest first (indexed by name)."""
        return [sa for sa in self.sas.named(name) if not sa.finished] if name else []

    def _acting_on(self, name: str) -> list[IkeSa]:
        """``find`` for a verb: the SAs are filed again afterwards (their timers change)."""
        found = self.find(name)
        for sa in found:
            self.sas.touch(sa)
        return found

    # --- verbs and views for the runtime (it never reaches into an IkeSa) --------------------

    def delete(self, name: str, now: float) -> int:
        """Delete the connection's IKE SAs (the peer is told) and any restart of it; how
        many IKE SAs there were."""
        self.restarts.end(name)
        sas = self._acting_on(name)
        for sa in sas:
            sa.delete(now)
        return len(sas)

    def delete_all(self, now: float) -> None:
        self.sas.touch_all()
        for sa in list(self.sas.values()):
            sa.delete(now)

    def renew(
        self,
        name: str,
        now: float,
        child: str | None = None,
        ike: bool = False,
        reauth: bool = False,
    ) -> tuple[int, list[str]]:
        """Rekey the connection's CHILD SAs (all, or those named ``child``), its IKE SA or,
        with ``reauth``, reauthenticate it: (how many could be, the names of those started)."""
        sas = self._acting_on(name)
        if reauth or ike:
            started = [
                sa.name for sa in sas if (sa.reauthenticate(now) if reauth else sa.rekey(now))
            ]
            return len(sas), started
        matching = [(sa, c) for sa in sas for c in sa.children if child in (None, c.name)]
        return len(matching), [c.name for sa, c in matching if sa.children.rekey(c, now)]

    def local_addresses_changed(
        self,
        addresses: tuple[str, ...] | list[str],
        now: float,
        source_for: SourceFor | None = None,
    ) -> None:
        """The host's addresses are now ``addresses`` (netlink): IKE SAs with MOBIKE whose
        address went away move to another, picked with the route lookup ``source_for``
        (RFC 4555 §3.5, §3.6); those without wait for their liveness check."""
        self.local_addresses = tuple(addresses)
        self.sas.touch_all()
        for sa in list(self.sas.values()):
            sa.local_addresses_changed(self.local_addresses, source_for, now)

    def replace_connections(self, connections: Iterable[ConnectionConfig], now: float):
        """Run ``connections`` from now on (a reload): the SAs of removed and changed ones
        are deleted (the peer is told); those of unchanged ones are not touched. Returns the
        ``ConnectionDiff``; starting the added and changed is the runtime's call."""
        connections = tuple(connections)
        diff = diff_connections(self.connections, connections)
        for name in diff.replaced:
            self.delete(name, now)
        self.connections = connections
        return diff

    def identities(self, name: str, remote: Address) -> tuple[str, str] | None:
        """(ours, the peer's) identity on the connection's IKE SA with ``remote``."""
        for sa in self.find(name):
            if sa.remote == remote and sa.remote_identity is not None:
                return str(sa.local_identity), str(sa.remote_identity)
        return None

    def acquire(self, name: str, now: float) -> int:
        """Traffic hit a trap of ``name`` while its IKE SA is up: create the children it
        lacks; how many were started."""
        return self.reconciler.acquire(self._acting_on(name), now)

    def overlaps(self, name: str) -> dict[str, int]:
        """IKE SAs and CHILD SA pairs of the connection beyond one each."""
        return reconcile.overlaps(self.find(name), name)

    def liveness(self, name: str) -> str | None:
        """The liveness state of the connection's IKE SA, None if it has none."""
        up = self.find(name)
        return up[0].liveness.state.value if up else None

    def status(self, to_wall: float, traffic: Callable[[bytes], dict]) -> list[dict]:
        """Every IKE SA as ``core.status`` writes it."""
        return [ike_sa_status(sa, to_wall, traffic) for sa in self.sas.values()]

    # --- input ---------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        """Process one IKE message (non-ESP marker already removed). Never raises."""
        try:
            if isakmp_version(data) == 1:
                self.v1.receive(data, src, dst, now)
            elif creates_sa(data) and self.gate.screen(data, src, dst, now):
                return  # answered or dropped without state: nothing to reap
            else:
                self._dispatch(data, decode_message(data), src, dst, now)
        except DecodeError:
            self.counters["dropped_malformed"] += 1
        except Dropped as drop:
            self.counters[drop.statistic] += 1
        self._reap(now)

    def _dispatch(self, data: bytes, msg: Message, src: Address, dst: Address, now: float) -> None:
        if msg.exchange == ExchangeType.IKE_SA_INIT and not msg.is_response:
            sa = self.gate.responder(msg, src, dst, now)
        else:
            local_spi = msg.spi_r if msg.is_initiator else msg.spi_i
            sa = self.sas.get(local_spi)
            if sa is None or sa.finished:
                closed = self._closed.get(local_spi)
                if closed is not None and closed[0].tasks.answer_retransmit(data, msg, now):
                    return
                if msg.spi_i in self.sas or msg.spi_r in self.sas:
                    # A live SA with the I flag flipped: never hand out its QCD token.
                    raise Dropped("malformed", "initiator flag does not fit the SA's role")
                if not msg.is_response:
                    self._report_crash(msg, src, dst, now)
                raise Dropped("unknown_spi", f"no IKE SA with SPI {local_spi.hex()}")
            if msg.is_initiator == sa.initiator:
                raise Dropped("malformed", "initiator flag does not fit the SA's role")
        self.sas.touch(sa)
        sa.tasks.receive(data, msg, src, dst, now)

    # --- fast recovery (RFC 6290, RFC 7296 §2.21.4) ----------------------------------------

    def _report_crash(self, msg: Message, src: Address, dst: Address, now: float) -> None:
        """Answer a request for an IKE SA we do not know (we restarted) with INVALID_IKE_SPI
        and our QCD token, so the peer can believe it without waiting for its DPD budget."""
        if not self._reports.crash_answer_allowed(now):
            self.counters["crash_reports_rate_limited"] += 1
            return
        self.counters["crash_reports_sent"] += 1
        self.queue_datagram(crash_answer(self.qcd_secret, msg), dst, src)

    def esp_unknown_spi(self, spi: bytes, peer: str, now: float) -> None:
        """The data plane got ESP with an unknown SPI from ``peer``: tell it (INVALID_SPI,
        protected by our IKE SA with it), rate-limited per SPI. An SPI we allocated belongs
        to a CHILD SA being negotiated: the peer is just early. Only SAs past IKE_AUTH are
        looked at (indexed): garbage ESP must not cost a walk of a flood's half-open SAs."""
        if spi in self._esp_spis:
            return
        for sa in (sa for name in self._connections.by_name for sa in self.sas.up(name)):
            if sa.remote[0] == peer and sa.state is IkeState.ESTABLISHED:
                if self._reports.spi_report_allowed(spi, now):
                    self.counters["invalid_spi_reports_sent"] += 1
                    sa.report_invalid_spi(spi, now)
                    self.sas.touch(sa)
                return

    # --- housekeeping ----------------------------------------------------------------------

    def _reap(self, now: float) -> None:
        """Forget finished SAs (keeping their last answer for a while, for a peer that
        retransmits a request it sent before the delete, §2.1) and completed half-open
        entries."""
        closed = self._closed
        while closed:  # oldest first; copying the table on every call made it O(n) each
            spi, (_, until) = next(iter(closed.items()))
            if now < until:
                break
            closed.popitem(last=False)
        for sa in self.sas.take_opened():
            self.gate.settled(sa)
        for spi, sa in self.sas.finished():
            if not sa.tasks.in_flight():
                del self.sas[spi]
                self.reconciler.forget(spi)
                self._closed[spi] = (sa, now + CLOSED_ANSWERS_KEPT)
