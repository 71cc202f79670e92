"""The ESP data plane without I/O: which SA carries a packet, and what installing, rekeying
and deleting SAs does to the packets around it.

Time comes in as ``now``. ``outbound`` and ``inbound`` return their result (the hot path);
packets an install releases are pulled, and notices for the IKE core popped from
``notices``; one timer (``get_timer``/``handle_timer``) ends the linger of deleted SAs.

Fail closed: a packet no installed SA covers is held by a trap or dropped and counted,
never returned in the clear.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from ..crypto.keys import ChildKeys
from ..wire.traffic_selectors import TrafficSelector
from .sa import NEXT_IPV4, NEXT_IPV6, EspDrop, EspSa, SaExpired
from .spd import Policy, Spd, covered, parse_flow
from .transport_mode import build_ip_packet, strip_ip_header
from .vnet import NEXT_VNET, VnetError, check, frame, head

Address = tuple[str, int]
LINGER_SECONDS = 2.0
"""A deleted SA still opens what the peer sent on it before the delete (RFC 7296 §2.8)."""
HOLD_PACKETS = 32
"""Packets a trap holds while its connection comes up; older ones are dropped first."""
HOLD_SECONDS = 3.0
"""How long a held or early packet stays worth delivering."""
EARLY_PACKETS = 64
"""ESP for an SPI not installed yet, kept in case its CHILD SA is about to be: the peer may
send on a new SA as soon as it answered, before its answer reaches us."""
_DROP_COUNTERS = {"replay": "replay_drops", "auth_failed": "auth_failures"}


@dataclass(frozen=True, slots=True)
class SaPair:
    """A CHILD SA pair to install: both directions (RFC 4303) and how they are used."""

    connection: str
    """Name of the connection (traps of this name are released)."""
    child: str
    """Name of the child configuration."""
    spi_in: bytes
    """SPI of the inbound SA (ours)."""
    spi_out: bytes
    """SPI of the outbound SA (the peer's)."""
    encr: tuple[int, int | None]
    """Encryption transform id and key length in bits."""
    integ: int | None
    """Integrity transform id, None for AEAD."""
    esn: bool
    """Extended sequence numbers (RFC 4303 §2.2.1)."""
    keys: ChildKeys
    """Keying material, initiator-to-responder first (RFC 7296 §2.17)."""
    initiator: bool
    """We initiated the exchange that made the keys: the initiator-to-responder keys are ours."""
    local_ts: tuple[TrafficSelector, ...]
    """Our traffic selectors."""
    remote_ts: tuple[TrafficSelector, ...]
    """The peer's traffic selectors."""
    local: Address
    """Our outer address and port."""
    peer: Address
    """The peer's outer address and port."""
    udp_encap: bool
    """ESP in UDP (RFC 3948) rather than IP protocol 50."""
    transport: bool
    """Transport mode (RFC 4303 §3.1.1) rather than tunnel mode."""
    marks: tuple[tuple[float | None, float | None], ...]
    """(bytes, packets) counts to report with ``VolumeReached`` once either direction reaches
    one; None never."""
    replaces: bytes | None = None
    """Inbound SPI of the SA this one replaces (a rekey or a reauthentication's copy)."""
    defer_outbound: bool = False
    """Receive only for now. With ``replaces``, keep sending on the old SA until the peer
    sends on this one or the old one is deleted (make-before-break, RFC 7296 §2.8)."""
    vnet: bool = False
    """Both peers carry TUN super-packets whole with Next Header 253 (esp/vnet.py)."""


@dataclass(frozen=True, slots=True)
class Trap:
    """Traffic for these selectors is held while ``connection`` comes up
    (``start_action = trap``, ``dpd_action = hold``)."""

    connection: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]

    def covers(self, packet: bytes) -> bool:
        flow = parse_flow(packet)
        return (
            flow is not None
            and covered(self.local_ts, flow.src, flow.protocol, flow.sport)
            and covered(self.remote_ts, flow.dst, flow.protocol, flow.dport)
        )


@dataclass(frozen=True, slots=True)
class VolumeReached:
    """An SA reached one of its ``SaPair.marks``: counts of its busier direction."""

    spi_in: bytes
    octets: int
    packets: int


@dataclass(frozen=True, slots=True)
class UnknownSpi:
    """ESP arrived for an SPI that is not installed (RFC 4303 §3.4.2)."""

    spi: bytes
    peer: str


@dataclass(frozen=True, slots=True)
class PeerMoved:
    """Authenticated ESP that advanced the replay window came from a new address or port
    of a UDP-encapsulated SA's peer (a NAT in front of it remapped it)."""

    spi_in: bytes
    source: Address


@dataclass(frozen=True, slots=True)
class TrapTriggered:
    """A trap held a packet: ``connection`` should be brought up."""

    connection: str


Notice = VolumeReached | UnknownSpi | PeerMoved | TrapTriggered


class EspPlane:
    """The SPD and its SAs, traps, early packets, counters and volume marks.

    ``counters`` holds the drops no single SA owns; ``status(spi_in)`` those of one SA.
    """

    def __init__(self, rng) -> None:
        self.counters: Counter[str] = Counter()
        self._rng = rng
        self._spd = Spd()
        self._traps: dict[Trap, deque[tuple[bytes, float]]] = {}
        self._early: deque[tuple[bytes, Address, float]] = deque(maxlen=EARLY_PACKETS)
        self._deferred: dict[bytes, Policy] = {}
        """Old inbound SPI -> the SA to send on once the peer shows it installed it (its
        first packet on the new SA) or deletes the old one."""
        self._lingering: dict[bytes, float] = {}
        """Inbound SPI of a deleted SA -> when it is removed."""
        self._to_send: list[tuple[Policy, bytes]] = []
        self._to_tun: list[bytes] = []
        self._moved: set[Policy] = set()
        """Policies whose traffic times changed (or that went into use) since ``activity``."""
        self.notices: deque[Notice] = deque()
        """For the IKE core, oldest first: the caller pops them (a deque, so that checking
        for none after each packet costs no call)."""

    # --- inputs: SAs and traps -----------------------------------------------------------

    def add_trap(self, trap: Trap) -> None:
        """Hold packets ``trap`` covers that no SA does (a trap added twice is one trap)."""
        self._traps.setdefault(trap, deque(maxlen=HOLD_PACKETS))

    def remove_traps(self, connection: str) -> None:
        """Drop the connection's traps and what they hold (it was removed or replaced)."""
        for trap in [t for t in self._traps if t.connection == connection]:
            del self._traps[trap]

    def install(self, sa: SaPair, now: float) -> None:
        """Install both directions; release what the connection's traps hold and replay
        early ESP for the new inbound SPI (pull them with ``esp_to_send``/``packets_to_tun``)."""
        keys = sa.keys
        i_to_r, r_to_i = (keys.encr_i, keys.integ_i), (keys.encr_r, keys.integ_r)
        mine, theirs = (i_to_r, r_to_i) if sa.initiator else (r_to_i, i_to_r)
        policy = Policy(
            sa.child,
            sa.local_ts,
            sa.remote_ts,
            EspSa(sa.spi_out, sa.encr, sa.integ, *mine, esn=sa.esn, rng=self._rng),
            EspSa(sa.spi_in, sa.encr, sa.integ, *theirs, esn=sa.esn, rng=self._rng),
            sa.local,
            sa.peer,
            sa.udp_encap,
            transport=sa.transport,
            vnet=sa.vnet and not sa.transport,
        )
        policy.set_marks(list(sa.marks))
        self._spd.install(policy, outbound=not sa.defer_outbound)
        self._moved.add(policy)
        if sa.defer_outbound and sa.replaces is not None:
            self._deferred[sa.replaces] = policy
        elif sa.replaces in self._deferred:
            # Simultaneous rekeys (RFC 7296 §2.8.1): our own successor of the old SA is in
            # use now; the one we answered waits for it in turn, used only if ours is deleted.
            self._deferred[sa.spi_in] = self._deferred.pop(sa.replaces)
        for trap, held in self._traps.items():
            if trap.connection == sa.connection:
                self._release(held, now)
        self._replay_early(sa.spi_in, now)

    def delete(self, spi_in: bytes, now: float) -> None:
        """Send nothing more on the SA; open what is still in flight to it for
        LINGER_SECONDS (make-before-break, RFC 7296 §2.8)."""
        self._spd.retire(spi_in)
        self._lingering.setdefault(spi_in, now + LINGER_SECONDS)
        for old, waiting in list(self._deferred.items()):
            if waiting.inbound.spi == spi_in:  # deleted before it was used
                del self._deferred[old]
        successor = self._deferred.get(spi_in)
        if successor is not None:  # the rekeyed SA is gone: send on its successor
            self._activate(successor)

    def move(self, spi_in: bytes, local: Address, peer: Address, udp_encap: bool) -> None:
        """The SA's outer addresses or encapsulation changed (MOBIKE, RFC 4555; a NAT
        remap): its ESP goes between the new pair from now on."""
        policy = self._spd.by_spi.get(spi_in)
        if policy is not None:
            policy.local, policy.peer, policy.udp_encap = local, peer, udp_encap

    def get_timer(self) -> float | None:
        """When the next lingering SA is due to go, or None."""
        return min(self._lingering.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Remove the deleted SAs whose linger is over."""
        for spi_in, until in list(self._lingering.items()):
            if until <= now:
                del self._lingering[spi_in]
                self._moved.discard(self._spd.remove(spi_in))

    # --- packets -------------------------------------------------------------------------

    def carries_vnet(self, packet: bytes) -> bool:
        """Whether the SA for ``packet`` takes it whole after its virtio header."""
        policy = self._spd.outbound(packet)
        return policy is not None and policy.vnet

    def outbound(self, packet: bytes, now: float, vnet: bytes = b"") -> tuple[Policy, bytes] | None:
        """An IP packet to protect: the SA's policy (outer addresses, UDP encapsulation)
        and the ESP packet, or None when it is held or dropped (RFC 4301 §5.1). A ``vnet``
        header is sent along (Next Header 253) only where ``carries_vnet`` said so; one
        the peer would refuse raises VnetError (``vnet.frame``) before anything is sealed."""
        policy = self._spd.outbound(packet)
        if policy is None:
            self._no_sa(packet, now)
            return None
        try:
            if vnet and policy.vnet:
                esp = policy.outbound.seal(frame(vnet, packet), NEXT_VNET)
            elif policy.transport:
                esp = policy.outbound.seal(*strip_ip_header(packet))
            else:
                esp = policy.outbound.seal(packet, NEXT_IPV4 if packet[0] >> 4 == 4 else NEXT_IPV6)
        except SaExpired:
            self.counters["expired_drops"] += 1
            return None
        counters = policy.counters
        counters["packets_out"] += 1
        counters["bytes_out"] += len(packet)
        policy.last_outbound = now
        if policy.silent_since is None:
            policy.silent_since = now
        self._moved.add(policy)
        if (
            counters["bytes_out"] >= policy.bytes_mark
            or counters["packets_out"] >= policy.packets_mark
        ):
            self._report_volume(policy)
        return policy, esp

    def inbound(self, data: bytes, source: Address, now: float) -> bytes | None:
        """An ESP packet from ``source`` (port 0 for raw ESP): the IP packet to deliver, or
        None when it is dropped (RFC 4303 §3.4, RFC 4301 §5.2 selector check). On an SA
        that negotiated it, the packet may come after its virtio header (``vnet.is_vnet``)."""
        policy = self._spd.by_spi.get(data[:4])
        if policy is None:
            self.counters["unknown_spi_drops"] += 1
            self._early.append((data, source, now))
            self.notices.append(UnknownSpi(data[:4], source[0]))
            return None
        counters = policy.counters
        top = policy.inbound.replay.top
        try:
            inner, next_header = policy.inbound.open(data)
        except EspDrop as drop:
            key = _DROP_COUNTERS.get(drop.counter, "malformed_drops")
            counters[key] = counters.get(key, 0) + 1
            return None
        size = len(inner)
        if next_header == NEXT_VNET:
            if not policy.vnet:
                counters["vnet_drops"] = counters.get("vnet_drops", 0) + 1
                return None
            try:
                size = check(inner)
            except VnetError:
                counters["malformed_drops"] = counters.get("malformed_drops", 0) + 1
                return None
            allowed = self._spd.inbound_allowed(policy, head(inner))
        elif policy.transport:
            inner = build_ip_packet(policy.peer[0], policy.local[0], next_header, inner)
            size = len(inner)
            allowed = self._spd.inbound_allowed(policy, inner)
        else:
            allowed = self._spd.inbound_allowed(policy, inner)
        if not allowed:
            counters["selector_drops"] += 1
            return None
        if self._deferred and policy not in self._spd.policies:
            self._activate(policy)  # the peer sends on the new SA, so it can receive on it
        counters["packets_in"] += 1
        counters["bytes_in"] += size
        policy.last_inbound, policy.silent_since = now, None
        self._moved.add(policy)
        if source != policy.peer and policy.udp_encap and policy.inbound.replay.top > top:
            self.notices.append(PeerMoved(policy.inbound.spi, source))
        if (
            counters["bytes_in"] >= policy.bytes_mark
            or counters["packets_in"] >= policy.packets_mark
        ):
            self._report_volume(policy)
        return inner

    # --- pulled outputs ------------------------------------------------------------------

    def esp_to_send(self) -> list[tuple[Policy, bytes]]:
        """ESP packets released by ``install`` from traps, as ``outbound`` returns them."""
        out, self._to_send = self._to_send, []
        return out

    def packets_to_tun(self) -> list[bytes]:
        """IP packets from early ESP that ``install`` opened."""
        out, self._to_tun = self._to_tun, []
        return out

    def activity(self) -> list[tuple[bytes, float | None, float | None, float | None]]:
        """(inbound SPI, last inbound, last outbound, first outbound since the last
        inbound) of each SA in use whose times moved since the last call (or that went into
        use), for the liveness engine: proportional to the active SAs, not all of them."""
        moved, self._moved = self._moved, set()
        in_use = self._spd.policies
        return [
            (p.inbound.spi, p.last_inbound, p.last_outbound, p.silent_since)
            for p in moved
            if p in in_use
        ]

    def status(self, spi_in: bytes, to_wall: float) -> dict:
        """One SA's counters and traffic times; ``to_wall`` converts ``now`` to Unix time."""
        policy = self._spd.by_spi.get(spi_in)
        if policy is None:
            return {}
        out = dict(policy.counters)
        out["last_inbound"] = None if policy.last_inbound is None else policy.last_inbound + to_wall
        out["last_outbound"] = (
            None if policy.last_outbound is None else policy.last_outbound + to_wall
        )
        return out

    # --- internals -----------------------------------------------------------------------

    def _no_sa(self, packet: bytes, now: float) -> None:
        for trap, held in self._traps.items():
            if trap.covers(packet):
                if len(held) == HOLD_PACKETS:
                    self.counters["held_dropped"] += 1
                held.append((packet, now))
                self.notices.append(TrapTriggered(trap.connection))
                return
        self.counters["no_sa_drops"] += 1

    def _release(self, held: deque[tuple[bytes, float]], now: float) -> None:
        """Send what a trap held unless it waited too long; what the new SA does not cover
        stays held (another CHILD SA of the connection may cover it)."""
        waiting = list(held)
        held.clear()
        for packet, since in waiting:
            if since < now - HOLD_SECONDS:
                self.counters["held_expired"] += 1
            elif self._spd.outbound(packet) is None:
                held.append((packet, since))
            elif (sealed := self.outbound(packet, now)) is not None:
                self._to_send.append(sealed)

    def _replay_early(self, spi_in: bytes, now: float) -> None:
        early = [item for item in self._early if item[0][:4] == spi_in]
        if not early:
            return
        self._early = deque(
            (item for item in self._early if item[0][:4] != spi_in), maxlen=EARLY_PACKETS
        )
        for data, source, received in early:
            if now - received <= HOLD_SECONDS:
                self.counters["early_replayed"] += 1
                inner = self.inbound(data, source, now)
                if inner is not None:
                    self._to_tun.append(inner)

    def _activate(self, policy: Policy) -> None:
        """Send on a deferred SA from now on (RFC 7296 §2.8 make-before-break)."""
        waited_for = [old for old, successor in self._deferred.items() if successor is policy]
        for old in waited_for:
            del self._deferred[old]
        if waited_for:
            self._spd.activate(policy)
            self._moved.add(policy)

    def _report_volume(self, policy: Policy) -> None:
        counters = policy.counters
        policy.passed_mark()
        self.notices.append(
            VolumeReached(
                policy.inbound.spi,
                max(counters["bytes_in"], counters["bytes_out"]),
                max(counters["packets_in"], counters["packets_out"]),
            )
        )
