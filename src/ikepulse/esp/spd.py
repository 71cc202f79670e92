"""Security Policy Database: which CHILD SA carries an inner packet (RFC 4301 §4.4.1)."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from ..wire.traffic_selectors import TrafficSelector
from .sa import EspSa
from .spd_index import PolicyIndex

_PORT_PROTOCOLS = (6, 17, 132)  # TCP, UDP, SCTP


@dataclass(frozen=True, slots=True)
class Flow:
    """Addresses, protocol and ports of one IP packet."""

    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    protocol: int
    sport: int
    dport: int


def parse_flow(packet: bytes) -> Flow | None:
    """The flow of an IPv4/IPv6 packet, or None when it is not one we can read."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        protocol = packet[9]
        src, dst = ipaddress.IPv4Address(packet[12:16]), ipaddress.IPv4Address(packet[16:20])
        fragment_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
        ports_at = ihl if fragment_offset == 0 else None
    elif version == 6 and len(packet) >= 40:
        protocol = packet[6]
        src, dst = ipaddress.IPv6Address(packet[8:24]), ipaddress.IPv6Address(packet[24:40])
        ports_at = 40
    else:
        return None
    sport = dport = 0
    if protocol in _PORT_PROTOCOLS and ports_at is not None and len(packet) >= ports_at + 4:
        sport = int.from_bytes(packet[ports_at : ports_at + 2], "big")
        dport = int.from_bytes(packet[ports_at + 2 : ports_at + 4], "big")
    return Flow(src, dst, protocol, sport, dport)


def _matches(ts: TrafficSelector, address, protocol: int, port: int) -> bool:
    return (
        ts.start.version == address.version
        and ts.start <= address <= ts.end
        and (ts.protocol == 0 or ts.protocol == protocol)
        and ts.start_port <= port <= ts.end_port
    )


def covered(selectors, address, protocol: int, port: int) -> bool:
    return any(_matches(ts, address, protocol, port) for ts in selectors)


@dataclass(eq=False)
class Policy:
    """One installed CHILD SA as the data plane sees it (compared by identity)."""

    name: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    outbound: EspSa
    inbound: EspSa
    local: tuple[str, int]
    peer: tuple[str, int]
    udp_encap: bool
    transport: bool = False
    vnet: bool = False
    """TUN super-packets travel whole, Next Header 253 (esp/vnet.py)."""
    counters: dict = field(
        default_factory=lambda: dict.fromkeys(
            (
                "bytes_in",
                "packets_in",
                "bytes_out",
                "packets_out",
                "replay_drops",
                "auth_failures",
                "selector_drops",
            ),
            0,
        )
    )
    last_inbound: float | None = None
    last_outbound: float | None = None
    silent_since: float | None = None
    """The first packet out since the last one in (None: the last packet came in)."""
    marks: list[tuple[float, float]] = field(default_factory=list)
    """(bytes, packets) counts to report when either direction reaches one (lifetimes)."""
    bytes_mark: float = math.inf
    packets_mark: float = math.inf

    def set_marks(self, marks: list[tuple[float | None, float | None]]) -> None:
        self.marks = [
            (math.inf if b is None else b, math.inf if p is None else p) for b, p in marks
        ]
        self.passed_mark()

    def passed_mark(self) -> None:
        """Forget the marks either direction has reached; the next report is due at the
        lowest byte or packet count among those left."""
        counters = self.counters
        octets = max(counters["bytes_in"], counters["bytes_out"])
        packets = max(counters["packets_in"], counters["packets_out"])
        self.marks = [(b, p) for b, p in self.marks if octets < b and packets < p]
        self.bytes_mark = min((b for b, _ in self.marks), default=math.inf)
        self.packets_mark = min((p for _, p in self.marks), default=math.inf)

    def allows_outbound(self, flow: Flow) -> bool:
        return covered(self.local_ts, flow.src, flow.protocol, flow.sport) and covered(
            self.remote_ts, flow.dst, flow.protocol, flow.dport
        )

    def allows_inbound(self, flow: Flow) -> bool:
        return covered(self.remote_ts, flow.src, flow.protocol, flow.sport) and covered(
            self.local_ts, flow.dst, flow.protocol, flow.dport
        )


def flow_key(packet: bytes) -> bytes:
    """Protocol, addresses and ports as raw bytes: a cheap cache key for one flow."""
    version = packet[0] >> 4 if packet else 0
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        unfragmented = not int.from_bytes(packet[6:8], "big") & 0x1FFF
        ports = packet[ihl : ihl + 4] if packet[9] in _PORT_PROTOCOLS and unfragmented else b""
        return packet[9:10] + packet[12:20] + ports
    if version == 6 and len(packet) >= 40:
        ports = packet[40:44] if packet[6] in _PORT_PROTOCOLS else b""
        return packet[6:7] + packet[8:40] + ports
    return b""


class Spd:
    """Outbound lookup by inner flow (indexed by destination prefix, ``spd_index``),
    inbound lookup by SPI; both cached per flow."""

    CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self.policies = PolicyIndex()
        """The SAs in use for sending, newest first when iterated."""
        self.by_spi: dict[bytes, Policy] = {}
        self._outbound: dict[bytes, Policy | None] = {}
        self._inbound_ok: set[tuple[bytes, bytes]] = set()

    def install(self, policy: Policy, outbound: bool = True) -> None:
        """Accept the SA's inbound packets now; send on it now too unless ``outbound`` is
        False (a rekey responder waits for ``activate``)."""
        self.by_spi[policy.inbound.spi] = policy
        if outbound:
            self.activate(policy)

    def activate(self, policy: Policy) -> None:
        self.policies.add(policy)  # the newest SA wins (make-before-break)
        self._outbound.clear()

    def retire(self, spi_in: bytes) -> None:
        """Stop sending on an SA but keep accepting what is still in flight to it."""
        policy = self.by_spi.get(spi_in)
        if policy is not None and policy in self.policies:
            self.policies.discard(policy)
            self._outbound.clear()

    def remove(self, spi_in: bytes) -> Policy | None:
        policy = self.by_spi.pop(spi_in, None)
        if policy is not None:
            self.policies.discard(policy)
            self._outbound.clear()
            self._inbound_ok.clear()
        return policy

    def outbound(self, packet: bytes) -> Policy | None:
        """The CHILD SA whose selectors cover this inner packet, or None (drop it)."""
        key = flow_key(packet)
        try:
            return self._outbound[key]
        except KeyError:
            pass
        flow = parse_flow(packet)
        found = None
        if flow is not None:
            found = self.policies.lookup(flow)
        if len(self._outbound) >= self.CACHE_LIMIT:
            self._outbound.clear()
        self._outbound[key] = found
        return found

    def inbound_allowed(self, policy: Policy, packet: bytes) -> bool:
        """A decrypted packet lies inside its SA's selectors (RFC 4301 §5.2)."""
        key = (policy.inbound.spi, flow_key(packet))
        if key in self._inbound_ok:
            return True
        flow = parse_flow(packet)
        if flow is None or not policy.allows_inbound(flow):
            return False
        if len(self._inbound_ok) >= self.CACHE_LIMIT:
            self._inbound_ok.clear()
        self._inbound_ok.add(key)
        return True
