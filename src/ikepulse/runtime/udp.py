"""UDP sockets on the IKE and NAT-T ports (RFC 7296 §2.23, RFC 3948 §2.2 non-ESP marker)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

from .tun import mark_socket

log = logging.getLogger("ikepulse.net")

NON_ESP_MARKER = b"\0\0\0\0"
BATCH = 64
"""Datagrams read from one socket per loop turn: IKE ones are then served by priority
(``intake``), so a flood of IKE_SA_INIT cannot crowd IKE_AUTH out of a short queue."""
RECEIVE_BUFFER = 4 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux, not exported by Python
NAT_KEEPALIVE = b"\xff"

Address = tuple[str, int]
IkeHandler = Callable[[bytes, Address, Address], None]
EspHandler = Callable[[bytes, Address, Address], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr) -> None:
        self.endpoint.received(data, (addr[0], addr[1]))
        self.endpoint.read_more()

    def error_received(self, exc: Exception) -> None:
        log.debug("socket %s: %s", self.endpoint.local, exc)


class Endpoint:
    """One bound UDP socket; on the NAT-T port it demultiplexes IKE, ESP and keepalives."""

    def __init__(
        self, local: Address, natt: bool, on_ike: IkeHandler, on_esp: EspHandler | None, counters
    ) -> None:
        self.local = local
        self.natt = natt
        self.on_ike = on_ike
        self.on_esp = on_esp
        self.counters = counters
        self.transport: asyncio.DatagramTransport | None = None
        self._reader: socket.socket | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.local[0] else socket.AF_INET
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self),
            local_addr=self.local,
            family=family,
            reuse_port=False,
        )
        sock = self.transport.get_extra_info("socket")
        mark_socket(sock)
        # A second handle on the same socket, to read the rest of a batch without waiting
        # for the loop's next turn (asyncio reads one datagram per readiness).
        self._reader = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
        self._reader.setblocking(False)
        try:  # past net.core.rmem_max when we may (root): room for bursts of a flood
            self._reader.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            self._reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def read_more(self) -> None:
        """Up to ``BATCH`` - 1 more datagrams already waiting on the socket."""
        reader = self._reader
        if reader is None:
            return
        for _ in range(BATCH - 1):
            try:
                data, addr = reader.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("socket %s: %s", self.local, exc)
                return
            self.received(data, (addr[0], addr[1]))

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

    def send_raw(self, data: bytes, dst: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, dst)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.transport is not None:
            self.transport.close()
