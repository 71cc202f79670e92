"""ESP in userspace: TUN <-> EspSa <-> UDP 4500 (RFC 3948) or raw IP protocol 50 (RFC 4303).

Fail closed: a packet read from the TUN device that no installed CHILD SA covers is dropped
and counted, never sent in the clear; the routes into the device stay while the daemon runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.connection import Mode
from ..core.events import ChildSaDeleted, ChildSaInstalled
from ..esp.sa import NEXT_IPV4, NEXT_IPV6, EspDrop, EspSa, SaExpired
from ..esp.spd import Policy, Spd, covered, parse_flow
from ..esp.transport_mode import build_ip_packet, strip_ip_header
from ..wire.payloads import TrafficSelector
from .tun import Tun, mark_socket, netlink
from .udp import Address

log = logging.getLogger("ikepulse.esp")
IPPROTO_ESP = 50
READ_BATCH = 64
LINGER_SECONDS = 2.0
HOLD_PACKETS = 32
HOLD_SECONDS = 3.0
EARLY_PACKETS = 64
"""ESP for an SPI not installed yet, kept in case its CHILD SA is about to be: the peer may
send on a new SA as soon as it answered, before its answer reaches us."""


@dataclass
class Trap:
    """``start_action = "trap"``: traffic for these selectors starts the connection and is
    held briefly until its CHILD SA is installed."""

    connection: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    held: deque = field(default_factory=lambda: deque(maxlen=HOLD_PACKETS))

    def covers(self, packet: bytes) -> bool:
        flow = parse_flow(packet)
        return (
            flow is not None
            and covered(self.local_ts, flow.src, flow.protocol, flow.sport)
            and covered(self.remote_ts, flow.dst, flow.protocol, flow.dport)
        )


def _local_source(networks) -> str | None:
    """An address of this host inside one of ``networks`` (the route's preferred source)."""
    for raw in netlink(lambda ipr: [m.get_attr("IFA_ADDRESS") for m in ipr.get_addr()]):
        address = ipaddress.ip_address(raw)
        if any(address in net for net in networks):
            return str(address)
    return None


class DataPlane:
    def __init__(
        self,
        send_udp: Callable[[Address, bytes, Address], None],
        now: Callable[[], float],
        on_trap: Callable[[str], None],
        on_unknown_spi: Callable[[bytes, str], None],
        on_volume: Callable[[bytes, int, int], None],
    ) -> None:
        self.spd = Spd()
        self.counters: Counter[str] = Counter()
        self.send_udp = send_udp
        self.now = now
        self.tun: Tun | None = None
        self.raw: dict[int, socket.socket] = {}
        self.traps: list[Trap] = []
        self._early: deque[tuple[bytes, str, float]] = deque(maxlen=EARLY_PACKETS)
        self._deferred: dict[bytes, Policy] = {}
        """Rekey responder: old inbound SPI -> the new SA to send on once the peer shows it
        installed it (its first packet on the new SA) or deletes the old one."""
        self.on_trap = on_trap
        self.on_unknown_spi = on_unknown_spi
        self.on_volume = on_volume
        """Called with (inbound SPI, bytes, packets) when an SA reaches a lifetime mark."""
        self._rng = secrets.SystemRandom()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tun = Tun()
        loop.add_reader(self.tun.fd, self._on_tun)
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                raw = socket.socket(family, socket.SOCK_RAW, IPPROTO_ESP)
            except OSError as exc:
                log.info("no raw ESP socket for %s: %s", family.name, exc)
                continue
            raw.setblocking(False)
            mark_socket(raw)
            loop.add_reader(raw.fileno(), self._on_raw, raw, family)
            self.raw[family] = raw

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self.tun is not None:
            loop.remove_reader(self.tun.fd)
            self.tun.close()
            self.tun = None
        for raw in self.raw.values():
            loop.remove_reader(raw.fileno())
            raw.close()
        self.raw.clear()

    # --- SA management -----------------------------------------------------------------

    def on_event(self, event) -> None:
        if isinstance(event, ChildSaInstalled):
            self.install(event)
        elif isinstance(event, ChildSaDeleted):
            # Make-before-break: packets the peer sent on the old SA may still be on their
            # way; accept them for LINGER_SECONDS more, but send nothing on it any longer.
            self.spd.retire(event.spi_in)
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self.spd.remove, event.spi_in)
            for old, waiting in list(self._deferred.items()):
                if waiting.inbound.spi == event.spi_in:  # deleted before it was used
                    del self._deferred[old]
            successor = self._deferred.get(event.spi_in)
            if successor is not None:  # the rekeyed SA is gone: send on its successor
                self._activate(successor)

    def route(self, local_ts, remote_ts) -> None:
        """Route the remote selectors into the TUN device: from now on nothing for them
        leaves in the clear, with or without an SA."""
        if self.tun is None:
            return
        local_nets = [
            n for ts in local_ts for n in ipaddress.summarize_address_range(ts.start, ts.end)
        ]
        source = _local_source(local_nets)
        for ts in remote_ts:
            for network in ipaddress.summarize_address_range(ts.start, ts.end):
                self.tun.route(network, source if network.version == 4 else None)

    def add_trap(self, trap: Trap) -> None:
        self.traps.append(trap)
        self.route(trap.local_ts, trap.remote_ts)

    def install(self, event: ChildSaInstalled) -> None:
        keys = event.keys
        mine = (keys.encr_i, keys.integ_i) if event.initiator else (keys.encr_r, keys.integ_r)
        theirs = (keys.encr_r, keys.integ_r) if event.initiator else (keys.encr_i, keys.integ_i)

        def make(spi: bytes, material: tuple[bytes, bytes]) -> EspSa:
            return EspSa(spi, event.encr, event.integ, *material, esn=event.esn, rng=self._rng)

        policy = Policy(
            event.child,
            event.local_ts,
            event.remote_ts,
            make(event.spi_out, mine),
            make(event.spi_in, theirs),
            event.local,
            event.remote,
            event.udp_encap,
            transport=event.mode is Mode.TRANSPORT,
        )
        limits = event.limits
        policy.set_marks(
            [
                (limits.rekey_bytes, limits.rekey_packets),
                (limits.life_bytes, limits.life_packets),
            ]
        )
        self.spd.install(policy, outbound=not event.defer_outbound)
        if event.defer_outbound and event.replaces is not None:
            self._deferred[event.replaces] = policy
        elif event.replaces in self._deferred:
            # Simultaneous rekeys (§2.8.1): our own successor of the old SA is in use now; the
            # one we answered waits for it in turn, and is used only if ours is deleted.
            self._deferred[event.spi_in] = self._deferred.pop(event.replaces)
        if policy.transport:
            if self.tun is not None:
                self.tun.host_route(event.remote[0], event.local[0])
        else:
            self.route(event.local_ts, event.remote_ts)
        for trap in self.traps:
            if trap.connection == event.connection:
                self._release(trap)
        self._replay_early(event.spi_in)

    def _replay_early(self, spi_in: bytes) -> None:
        early = [item for item in self._early if item[0][:4] == spi_in]
        if not early:
            return
        self._early = deque(
            (item for item in self._early if item[0][:4] != spi_in), maxlen=EARLY_PACKETS
        )
        for data, peer, received in early:
            if self.now() - received <= HOLD_SECONDS:
                self.counters["early_replayed"] += 1
                self._inbound(data, peer)

    def _release(self, trap: Trap) -> None:
        """Send the packets a trap held, unless they waited too long."""
        oldest = self.now() - HOLD_SECONDS
        while trap.held:
            packet, since = trap.held.popleft()
            if since >= oldest:
                self._outbound(packet)
            else:
                self.counters["held_expired"] += 1

    def _activate(self, policy: Policy) -> None:
        for old, successor in list(self._deferred.items()):
            if successor is policy:
                del self._deferred[old]
                self.spd.activate(policy)

    def status(self, spi_in: bytes, to_wall: float) -> dict:
        policy = self.spd.by_spi.get(spi_in)
        if policy is None:
            return {}
        out = dict(policy.counters)
        out["last_inbound"] = None if policy.last_inbound is None else policy.last_inbound + to_wall
        out["last_outbound"] = (
            None if policy.last_outbound is None else policy.last_outbound + to_wall
        )
        return out

    # --- outbound ------------------------------------------------------------------------

    def _on_tun(self) -> None:
        for _ in range(READ_BATCH):
            try:
                packet = os.read(self.tun.fd, 65535)
            except BlockingIOError:
                return
            self._outbound(packet)

    def _outbound(self, packet: bytes) -> None:
        policy = self.spd.outbound(packet)
        if policy is None:
            trap = next((t for t in self.traps if t.covers(packet)), None)
            if trap is None:
                self.counters["no_sa_drops"] += 1
                return
            if len(trap.held) == trap.held.maxlen:
                self.counters["held_dropped"] += 1
            trap.held.append((packet, self.now()))
            self.on_trap(trap.connection)
            return
        try:
            if policy.transport:
                esp = policy.outbound.seal(*strip_ip_header(packet))
            else:
                esp = policy.outbound.seal(packet, NEXT_IPV4 if packet[0] >> 4 == 4 else NEXT_IPV6)
        except SaExpired:
            self.counters["expired_drops"] += 1
            return
        counters = policy.counters
        counters["packets_out"] += 1
        counters["bytes_out"] += len(packet)
        policy.last_outbound = self.now()
        if (
            counters["bytes_out"] >= policy.bytes_mark
            or counters["packets_out"] >= policy.packets_mark
        ):
            self._report_volume(policy)
        if policy.udp_encap:
            self.send_udp(policy.local, esp, policy.peer)
        else:
            family = socket.AF_INET6 if ":" in policy.peer[0] else socket.AF_INET
            raw = self.raw.get(family)
            if raw is not None:
                try:
                    raw.sendto(esp, (policy.peer[0], 0))
                except OSError:
                    self.counters["send_errors"] += 1

    def _report_volume(self, policy: Policy) -> None:
        counters = policy.counters
        policy.passed_mark()
        self.on_volume(
            policy.inbound.spi,
            max(counters["bytes_in"], counters["bytes_out"]),
            max(counters["packets_in"], counters["packets_out"]),
        )

    # --- inbound -------------------------------------------------------------------------

    def on_udp_esp(self, data: bytes, src: Address, dst: Address) -> None:
        self._inbound(data, src[0])

    def _on_raw(self, raw: socket.socket, family: int) -> None:
        for _ in range(READ_BATCH):
            try:
                data, (peer, *_) = raw.recvfrom(65535)
            except BlockingIOError:
                return
            if family == socket.AF_INET:  # IPv4 raw sockets deliver the IP header too
                data = data[(data[0] & 0x0F) * 4 :]
            self._inbound(data, peer)

    def _inbound(self, data: bytes, peer: str) -> None:
        policy = self.spd.by_spi.get(data[:4])
        if policy is None:
            self.counters["unknown_spi_drops"] += 1
            self._early.append((data, peer, self.now()))
            self.on_unknown_spi(data[:4], peer)
            return
        counters = policy.counters
        try:
            inner, next_header = policy.inbound.open(data)
        except EspDrop as drop:
            key = {"replay": "replay_drops", "auth_failed": "auth_failures"}.get(drop.counter)
            counters[key or "malformed_drops"] = counters.get(key or "malformed_drops", 0) + 1
            return
        if policy.transport:
            inner = build_ip_packet(policy.peer[0], policy.local[0], next_header, inner)
        if not self.spd.inbound_allowed(policy, inner):
            counters["selector_drops"] += 1
            return
        if self._deferred and policy not in self.spd.policies:
            self._activate(policy)  # the peer sends on the new SA, so it can receive on it
        counters["packets_in"] += 1
        counters["bytes_in"] += len(inner)
        policy.last_inbound = self.now()
        if (
            counters["bytes_in"] >= policy.bytes_mark
            or counters["packets_in"] >= policy.packets_mark
        ):
            self._report_volume(policy)
        try:
            os.write(self.tun.fd, inner)
        except OSError:
            self.counters["tun_write_errors"] += 1
