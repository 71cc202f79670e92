"""ESP in userspace, the I/O half: TUN <-> ``EspPlane`` <-> UDP 4500 (RFC 3948) or raw IP
protocol 50 (RFC 4303).

Fail closed: the routes into the TUN device stay while the daemon runs, and the plane drops
what no installed CHILD SA covers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import select
import socket
from collections import Counter
from collections.abc import Callable

from ..core.connection import Mode
from ..core.events import ChildSaDeleted, ChildSaInstalled, SaEndpointsChanged
from ..esp.plane import EspPlane, Notice, SaPair, Trap
from ..esp.spd import Policy
from ..esp.vnet import MAX_PACKET, VnetError, is_vnet
from .offload import PLAIN, VNET_SIZE, OffloadError, coalesce, segment
from .tun import Tun, mark_socket, netlink
from .udp import Address

log = logging.getLogger("ikepulse.esp")
IPPROTO_ESP = 50
READ_BATCH = 64
GSO_SEGMENTS, GSO_BYTES = 64, 65000
"""At most this many ESP packets and bytes in one UDP GSO send (UDP_MAX_SEGMENTS)."""
GSO_SEGMENT_MAX = 1472
"""Larger ESP packets (whole super-packets, esp/vnet.py) leave alone, fragmented by the kernel."""
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT = 23, 0


def _host_addresses() -> list:
    """Every address of this host (one netlink dump)."""
    dump = netlink(lambda ipr: [m.get_attr("IFA_ADDRESS") for m in ipr.get_addr()])
    return [ipaddress.ip_address(raw) for raw in dump if raw]


class LocalSources:
    """The host's addresses, for the preferred source of a route: one dump, kept, and dumped
    again only on a miss (at most once per ``REFRESH`` seconds) or after ``forget``. A dump
    per route made adding N routes cost N dumps, each as long as the host's address list."""

    REFRESH = 1.0

    def __init__(self, now: Callable[[], float], dump=_host_addresses) -> None:
        self.now = now
        self.dump = dump
        self._addresses: list | None = None
        self._dumped = 0.0

    def forget(self) -> None:
        """The host's addresses changed."""
        self._addresses = None

    def source(self, networks) -> str | None:
        """An address of this host inside one of ``networks``, or None."""
        found = self._find(networks)
        if found is None and (self._addresses is None or self.now() - self._dumped >= self.REFRESH):
            self._addresses, self._dumped = self.dump(), self.now()
            found = self._find(networks)
        return found

    def _find(self, networks) -> str | None:
        for address in self._addresses or ():
            if any(address in net for net in networks):
                return str(address)
        return None


def sa_pair(event: ChildSaInstalled) -> SaPair:
    """The plane's view of an installed CHILD SA."""
    limits = event.limits
    return SaPair(
        connection=event.connection,
        child=event.child,
        spi_in=event.spi_in,
        spi_out=event.spi_out,
        encr=event.encr,
        integ=event.integ,
        esn=event.esn,
        keys=event.keys,
        initiator=event.initiator,
        local_ts=event.local_ts,
        remote_ts=event.remote_ts,
        local=event.local,
        peer=event.remote,
        udp_encap=event.udp_encap,
        transport=event.mode is Mode.TRANSPORT,
        marks=(
            (limits.rekey_bytes, limits.rekey_packets),
            (limits.life_bytes, limits.life_packets),
        ),
        replaces=event.replaces,
        defer_outbound=event.defer_outbound,
        vnet=event.vnet,
    )


class DataPlane:
    """Moves the plane's packets between the TUN device and the sockets."""

    def __init__(
        self,
        send_udp: Callable[..., None],
        now: Callable[[], float],
        on_notice: Callable[[Notice], None],
        on_traffic: Callable[[], None],
        offload: bool = False,
    ) -> None:
        self.offload = offload
        """TUN GSO/GRO (runtime/offload.py): super-packets in, coalesced writes out."""
        self._inner: list[bytes] = []
        """Decrypted packets of the current read batch, written by ``flush``."""
        self.plane = EspPlane(secrets.SystemRandom())
        self.counters: Counter[str] = self.plane.counters
        """The plane's drops and, added here, send and TUN write errors."""
        self.send_udp = send_udp
        self.now = now
        self.tun: Tun | None = None
        self.raw: dict[int, socket.socket] = {}
        self.on_notice = on_notice
        """Called with each of the plane's notices for the IKE core."""
        self.on_traffic = on_traffic
        """Called at the first packet after ``traffic_seen`` was cleared."""
        self.traffic_seen = False
        self._timer: asyncio.TimerHandle | None = None
        self.sources = LocalSources(now)
        """The host's addresses, for routes' preferred sources (``forget`` on a change)."""

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tun = Tun(offload=self.offload)
        self.offload = self.tun.offload
        loop.add_reader(self.tun.fd, self._on_tun)
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                raw = socket.socket(family, socket.SOCK_RAW, IPPROTO_ESP)
            except OSError as exc:
                log.info("no raw ESP socket for %s: %s", family.name, exc)
                continue
            raw.setblocking(False)
            mark_socket(raw)  # with a 4 MiB receive buffer: room while the loop is busy
            if self.offload:  # whole super-packets: fragment them, never refuse them
                if family == socket.AF_INET:
                    raw.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
                else:
                    raw.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT)
            loop.add_reader(raw.fileno(), self._on_raw, raw, family)
            self.raw[family] = raw

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.tun is not None:
            loop.remove_reader(self.tun.fd)
            self.tun.close()
            self.tun = None
        for raw in self.raw.values():
            loop.remove_reader(raw.fileno())
            raw.close()
        self.raw.clear()

    # --- SAs, traps and routes -----------------------------------------------------------

    def on_event(self, event) -> None:
        """Install or delete a CHILD SA in the plane; send and deliver what that releases."""
        if isinstance(event, ChildSaInstalled):
            self.plane.install(sa_pair(event), self.now())
            if event.mode is Mode.TRANSPORT:
                if self.tun is not None:
                    self.tun.host_route(event.remote[0], event.local[0])
            else:
                self.route(event.local_ts, event.remote_ts)
            for policy, esp in self.plane.esp_to_send():
                self._send(policy, esp)
            for packet in self.plane.packets_to_tun():
                self._write(packet)
            self._notify()
        elif isinstance(event, ChildSaDeleted):
            self.plane.delete(event.spi_in, self.now())
            self._arm()
        elif isinstance(event, SaEndpointsChanged):
            for spi_in in event.spis_in:
                self.plane.move(spi_in, event.local, event.remote, event.udp_encap)

    def route(self, local_ts, remote_ts) -> None:
        """Route the remote selectors into the TUN device: from now on nothing for them
        leaves in the clear, with or without an SA."""
        tun = self.tun
        if tun is None:
            return
        networks = [
            network
            for ts in remote_ts
            for network in ipaddress.summarize_address_range(ts.start, ts.end)
            if str(network) not in tun.routes
        ]
        source = None
        if any(network.version == 4 for network in networks):
            source = self.sources.source(
                [n for ts in local_ts for n in ipaddress.summarize_address_range(ts.start, ts.end)]
            )
        for network in networks:
            tun.route(network, source if network.version == 4 else None)

    def add_trap(self, trap: Trap) -> None:
        self.plane.add_trap(trap)
        self.route(trap.local_ts, trap.remote_ts)

    def _arm(self) -> None:
        """One asyncio timer for the plane's ``get_timer``."""
        if self._timer is not None:
            self._timer.cancel()
        deadline = self.plane.get_timer()
        loop = asyncio.get_running_loop()
        self._timer = None if deadline is None else loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.plane.handle_timer(self.now())
        self._arm()

    def _notify(self) -> None:
        """Forward the plane's notices to the daemon (which hands them to the IKE core)."""
        notices = self.plane.notices
        while notices:
            self.on_notice(notices.popleft())

    def _traffic(self) -> None:
        if not self.traffic_seen:
            self.traffic_seen = True
            self.on_traffic()

    # --- packets -------------------------------------------------------------------------

    def poll(self) -> None:
        """Serve what the ESP and TUN sockets hold now, without waiting for the loop to find
        them readable (``runtime.intake`` calls it within rounds of IKE work)."""
        if self.tun is None:
            return
        fds = [self.tun.fd, *(raw.fileno() for raw in self.raw.values())]
        ready = set(select.select(fds, [], [], 0)[0])
        for family, raw in self.raw.items():
            if raw.fileno() in ready:
                self._on_raw(raw, family)
        if self.tun.fd in ready:
            self._on_tun()

    def _on_tun(self) -> None:
        plane, now, fd = self.plane, self.now(), self.tun.fd
        offload = self.offload
        batch: list[tuple[Policy, bytes]] = []
        for _ in range(READ_BATCH):
            try:
                packet = os.read(fd, 65535 + VNET_SIZE)
            except BlockingIOError:
                break
            if offload:
                vnet, body = packet[:VNET_SIZE], packet[VNET_SIZE:]
                if vnet != PLAIN and self._whole(vnet, body, now, batch):
                    continue
                try:
                    packets = segment(vnet, body)
                except OffloadError:
                    self.counters["offload_drops"] += 1
                    continue
                self.counters["tso_segments"] += len(packets) - 1
                for one in packets:
                    self._emit(plane.outbound(one, now), batch)
                continue
            self._emit(plane.outbound(packet, now), batch)
        self._send_udp_batch(batch)
        self._notify()
        self._traffic()

    def _whole(self, vnet: bytes, body: bytes, now: float, batch: list) -> bool:
        """Seal a packet whole after its virtio header (Next Header 253, esp/vnet.py) if its
        SA negotiated that; False when it is to be split instead."""
        plane = self.plane
        if len(body) > MAX_PACKET or not plane.carries_vnet(body):
            return False
        try:
            sealed = plane.outbound(body, now, vnet)
        except VnetError:
            return False
        if sealed is not None:
            self.counters["vnet_sent"] += 1
            self._emit(sealed, batch)
        return True

    def _emit(self, sealed: tuple[Policy, bytes] | None, batch: list) -> None:
        """ESP in UDP waits in ``batch`` for ``_send_udp_batch``; raw ESP leaves now."""
        if sealed is None:
            return
        if sealed[0].udp_encap:
            batch.append(sealed)
        else:
            self._send(*sealed)

    def _send_udp_batch(self, batch: list[tuple[Policy, bytes]]) -> None:
        """ESP in UDP: runs of equal-sized packets to one peer leave in one UDP GSO send."""
        i, count = 0, len(batch)
        while i < count:
            policy, esp = batch[i]
            size = total = len(esp)
            j = i + 1
            while j < count and j - i < GSO_SEGMENTS and size <= GSO_SEGMENT_MAX:
                other, more = batch[j]
                if (
                    len(more) > size
                    or total + len(more) > GSO_BYTES
                    or (
                        other is not policy
                        and (other.local, other.peer) != (policy.local, policy.peer)
                    )
                ):
                    break
                total += len(more)
                j += 1
                if len(more) < size:
                    break
            if j - i == 1:
                self.send_udp(policy.local, esp, policy.peer)
            else:
                self.counters["udp_gso_sends"] += 1
                self.send_udp(policy.local, b"".join(e for _, e in batch[i:j]), policy.peer, size)
            i = j

    def _send(self, policy: Policy, esp: bytes) -> None:
        if policy.udp_encap:
            self.send_udp(policy.local, esp, policy.peer)
            return
        family = socket.AF_INET6 if ":" in policy.peer[0] else socket.AF_INET
        raw = self.raw.get(family)
        if raw is not None:
            try:
                raw.sendto(esp, (policy.peer[0], 0))
            except OSError:
                self.counters["send_errors"] += 1

    def on_udp_esp(self, data: bytes, src: Address, dst: Address) -> None:
        plane = self.plane
        inner = plane.inbound(data, src, self.now())
        if inner is not None:
            self._inner.append(inner)
        if plane.notices:
            self._notify()
        if not self.traffic_seen:
            self._traffic()

    def _on_raw(self, raw: socket.socket, family: int) -> None:
        plane, now = self.plane, self.now()
        for _ in range(READ_BATCH):
            try:
                data, (peer, *_) = raw.recvfrom(65535)
            except BlockingIOError:
                break
            if family == socket.AF_INET:  # IPv4 raw sockets deliver the IP header too
                data = data[(data[0] & 0x0F) * 4 :]
            inner = plane.inbound(data, (peer, 0), now)
            if inner is not None:
                self._inner.append(inner)
        self.flush()
        self._notify()
        self._traffic()

    def flush(self) -> None:
        """Write the batch's decrypted packets, coalesced when offloading (GRO)."""
        inner, self._inner = self._inner, []
        if not inner or self.tun is None:
            return
        if not self.offload:
            for packet in inner:
                self._write(packet)
            return
        fd = self.tun.fd
        start = 0
        for index, packet in enumerate(inner):
            if is_vnet(packet):  # already framed (esp/vnet.py): the kernel finishes it
                self._coalesce(fd, inner[start:index])
                start = index + 1
                self._write(packet)
        self._coalesce(fd, inner[start:] if start else inner)

    def _coalesce(self, fd: int, packets: list[bytes]) -> None:
        if not packets:
            return
        writes = coalesce(packets)
        self.counters["gro_segments"] += len(packets) - len(writes)
        for buffers in writes:
            try:
                os.writev(fd, buffers)
            except OSError:
                self.counters["tun_write_errors"] += 1

    def _write(self, packet: bytes) -> None:
        try:
            if is_vnet(packet):
                if self.offload:
                    os.write(self.tun.fd, packet)
                else:  # cannot happen: only offloading daemons negotiate it
                    self.counters["vnet_drops"] += 1
            elif self.offload:
                os.writev(self.tun.fd, (PLAIN, packet))
            else:
                os.write(self.tun.fd, packet)
        except OSError:
            self.counters["tun_write_errors"] += 1
