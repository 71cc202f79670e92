"""UDP sockets on the IKE and NAT-T ports (RFC 7296 §2.23, RFC 3948 §2.2 non-ESP marker)."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
from collections.abc import Callable, Iterable

from ..core.nat_mappings import NAT_KEEPALIVE
from .tun import mark_socket

log = logging.getLogger("ikepulse.net")

NON_ESP_MARKER = b"\0\0\0\0"

Address = tuple[str, int]
READ_BATCH = 64
"""Datagrams read from one socket per loop turn: IKE ones are then served by priority
(``intake``), so a flood of IKE_SA_INIT cannot crowd IKE_AUTH out of a short queue."""
SOL_UDP, UDP_SEGMENT = 17, 103
_SEGMENT = struct.Struct("=H")

IkeHandler = Callable[[bytes, Address, Address], None]
EspHandler = Callable[[bytes, Address, Address], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr) -> None:
        endpoint = self.endpoint
        endpoint.received(data, (addr[0], addr[1]))
        if endpoint.on_batch_end is not None:
            endpoint.drain()

    def error_received(self, exc: Exception) -> None:
        log.debug("socket %s: %s", self.endpoint.local, exc)


class Endpoint:
    """One bound UDP socket; on the NAT-T port it demultiplexes IKE, ESP and keepalives."""

    def __init__(
        self,
        local: Address,
        natt: bool,
        on_ike: IkeHandler,
        on_esp: EspHandler | None,
        counters,
        on_batch_end: Callable[[], None] | None = None,
    ) -> None:
        self.local = local
        self.on_batch_end = on_batch_end
        """With it, each readable event reads up to READ_BATCH datagrams, then calls it
        (the data plane writes the batch's packets together)."""
        self.natt = natt
        self.on_ike = on_ike
        self.on_esp = on_esp
        self.counters = counters
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket | None = None
        self.gso = True
        """UDP GSO works here (False after the kernel refused it once)."""

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.local[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            mark_socket(sock)  # with a 4 MiB receive buffer: room for bursts of a flood
            sock.bind(self.local)
            self.transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), sock=sock
            )
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def drain(self) -> None:
        """Read what else is queued (up to READ_BATCH), then end the batch."""
        sock = self.sock
        for _ in range(READ_BATCH - 1):
            if sock is None or self.transport is None:
                break
            try:
                data, addr = sock.recvfrom(65535)
            except OSError:  # nothing queued, or an ICMP error asyncio reports elsewhere
                break
            self.received(data, (addr[0], addr[1]))
        self.on_batch_end()

    def received(self, data: bytes, src: Address) -> None:
        if not self.natt:
            self.on_ike(data, src, self.local)
        elif data == NAT_KEEPALIVE:
            self.counters["natt_keepalives_received"] += 1
        elif data.startswith(NON_ESP_MARKER):
            self.on_ike(data[4:], src, self.local)
        elif len(data) >= 8 and self.on_esp is not None:
            self.on_esp(data, src, self.local)
        else:
            self.counters["dropped_udp_encap"] += 1

    def send_ike(self, data: bytes, dst: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(NON_ESP_MARKER + data if self.natt else data, dst)

    def send_raw(self, data: bytes, dst: Address, segment: int = 0) -> None:
        """Send ``data``; with ``segment``, as datagrams of that size (the last may be
        shorter) in one call (UDP GSO, ``UDP_SEGMENT``), one by one where unsupported."""
        if self.transport is None:
            return
        if segment and len(data) > segment:
            if self.gso and self.sock is not None:
                try:
                    self.sock.sendmsg(
                        [data], [(SOL_UDP, UDP_SEGMENT, _SEGMENT.pack(segment))], 0, dst
                    )
                    return
                except BlockingIOError:
                    self.counters["esp_send_full"] += 1
                    return
                except OSError as exc:
                    log.info("no UDP GSO on %s (%s): sending datagrams one by one", self.local, exc)
                    self.gso = False
            for start in range(0, len(data), segment):
                self.transport.sendto(data[start : start + segment], dst)
            return
        self.transport.sendto(data, dst)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def drain_ready(endpoints: Iterable[Endpoint]) -> None:
    """Read a batch from each of ``endpoints`` whose socket holds datagrams now (one
    ``select``), without waiting for the event loop to get round to it."""
    socks = {e.sock.fileno(): e for e in endpoints if e.sock is not None and e.on_batch_end}
    if socks:
        for fd in select.select(list(socks), [], [], 0)[0]:
            socks[fd].drain()
