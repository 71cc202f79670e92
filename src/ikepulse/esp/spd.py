"""Security Policy Database: which CHILD SA carries an inner packet (RFC 4301 §4.4.1)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..wire.payloads import TrafficSelector
from .sa import EspSa

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


@dataclass
class Policy:
    """One installed CHILD SA as the data plane sees it."""

    name: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    outbound: EspSa
    inbound: EspSa
    local: tuple[str, int]
    peer: tuple[str, int]
    udp_encap: bool
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

    def allows_outbound(self, flow: Flow) -> bool:
        return covered(self.local_ts, flow.src, flow.protocol, flow.sport) and covered(
            self.remote_ts, flow.dst, flow.protocol, flow.dport
        )

    def allows_inbound(self, flow: Flow) -> bool:
        return covered(self.remote_ts, flow.src, flow.protocol, flow.sport) and covered(
            self.local_ts, flow.dst, flow.protocol, flow.dport
        )


class Spd:
    """Outbound lookup by inner flow, inbound lookup by SPI."""

    def __init__(self) -> None:
        self.policies: list[Policy] = []
        self.by_spi: dict[bytes, Policy] = {}

    def install(self, policy: Policy) -> None:
        self.policies.insert(0, policy)  # the newest SA wins (make-before-break)
        self.by_spi[policy.inbound.spi] = policy

    def remove(self, spi_in: bytes) -> Policy | None:
        policy = self.by_spi.pop(spi_in, None)
        if policy is not None:
            self.policies.remove(policy)
        return policy

    def outbound(self, flow: Flow) -> Policy | None:
        for policy in self.policies:
            if policy.allows_outbound(flow):
                return policy
        return None
