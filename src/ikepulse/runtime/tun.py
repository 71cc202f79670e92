"""A TUN device (Linux ``/dev/net/tun``) configured through netlink (pyroute2)."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pyroute2 import IPRoute

T = TypeVar("T")
_NETLINK = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
_WORKER = threading.local()


def netlink(operation: Callable[[IPRoute], T]) -> T:
    """Run a short pyroute2 operation and wait for it.

    pyroute2's synchronous IPRoute drives an event loop of its own, which cannot run
    inside the daemon's loop thread, so it runs on a worker thread.
    """

    return _NETLINK.submit(_on_worker, operation).result()


def _on_worker(operation: Callable[[IPRoute], T]) -> T:
    """One netlink socket for the worker's life: opening one per call cost more than the
    route it added (about 0.35 ms), and thousands of tunnels add thousands of routes."""
    ipr = getattr(_WORKER, "ipr", None)
    if ipr is None:
        ipr = _WORKER.ipr = IPRoute()
    return operation(ipr)


TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
SO_MARK = 36
BYPASS_MARK = 0x1CE4
"""Marks the daemon's own IKE/ESP sockets so their packets skip the transport-mode table."""
TRANSPORT_TABLE = 220
RULE_PRIORITY = 1000
FIB_RULE_INVERT = 2


SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 4 << 20
"""Bytes a data-plane socket queues while the event loop is busy (a rekey's DH, a burst of
TCP segments): the kernel's default of about 200 KiB overflows in a few milliseconds."""


def mark_socket(sock) -> None:
    """Let this socket's packets bypass the transport-mode routes into the TUN device, and
    give it a receive buffer of RECEIVE_BUFFER (past net.core.rmem_max when privileged)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_MARK, BYPASS_MARK)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


class Tun:
    """Layer-3 TUN device; closing it removes the device and its routes.

    With ``offload`` every read and write starts with a virtio_net_hdr (``IFF_VNET_HDR``)
    and reads may be TCP super-packets (``TUNSETOFFLOAD``: checksum and TSO)."""

    def __init__(self, name: str = "ikp0", mtu: int = 1400, offload: bool = False) -> None:
        self.name = name
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        try:
            flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
            if offload:
                try:
                    fcntl.ioctl(self.fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
                except OSError:
                    pass  # reads stay single packets with complete checksums
            self.offload = offload
            self.index = netlink(lambda ipr: ipr.link_lookup(ifname=name)[0])
            netlink(lambda ipr: ipr.link("set", index=self.index, mtu=mtu, state="up"))
        except Exception:
            os.close(self.fd)
            raise
        self.routes: set[str] = set()
        self.hosts: set[str] = set()
        self._rules: set[int] = set()

    def route(
        self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, source: str | None = None
    ) -> None:
        """Send ``network`` into the tunnel device (idempotent)."""
        key = str(network)
        if key in self.routes:
            return
        kwargs = {"dst": key, "oif": self.index}
        if source is not None:
            kwargs["prefsrc"] = source
        if network.version == 6:
            kwargs["family"] = 10
        netlink(lambda ipr: ipr.route("replace", **kwargs))
        self.routes.add(key)

    def host_route(self, host: str, source: str) -> None:
        """Transport mode: send traffic for the peer's own address into the device, except
        the daemon's marked IKE/ESP packets (``ip rule not fwmark ... table 220``)."""
        if host in self.hosts:
            return
        address = ipaddress.ip_address(host)
        family = 10 if address.version == 6 else 2
        if family not in self._rules:
            netlink(
                lambda ipr: ipr.rule(
                    "add",
                    table=TRANSPORT_TABLE,
                    priority=RULE_PRIORITY,
                    fwmark=BYPASS_MARK,
                    fwmask=0xFFFFFFFF,
                    flags=FIB_RULE_INVERT,
                    family=family,
                )
            )
            self._rules.add(family)
        netlink(
            lambda ipr: ipr.route(
                "replace",
                dst=f"{host}/{address.max_prefixlen}",
                oif=self.index,
                table=TRANSPORT_TABLE,
                family=family,
                prefsrc=source,
            )
        )
        self.hosts.add(host)

    def close(self) -> None:
        """Remove the device (and with it its routes) and the transport-mode rules."""
        for family in self._rules:
            netlink(
                lambda ipr, f=family: ipr.rule(
                    "del",
                    table=TRANSPORT_TABLE,
                    priority=RULE_PRIORITY,
                    fwmark=BYPASS_MARK,
                    fwmask=0xFFFFFFFF,
                    flags=FIB_RULE_INVERT,
                    family=f,
                )
            )
        self._rules.clear()
        os.close(self.fd)
