"""A TUN device (Linux ``/dev/net/tun``) configured through netlink (pyroute2)."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pyroute2 import IPRoute

T = TypeVar("T")
_NETLINK = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")


def netlink(operation: Callable[[IPRoute], T]) -> T:
    """Run a short pyroute2 operation and wait for it.

    pyroute2's synchronous IPRoute drives an event loop of its own, which cannot run
    inside the daemon's loop thread, so it runs on a worker thread.
    """

    def run() -> T:
        with IPRoute() as ipr:
            return operation(ipr)

    return _NETLINK.submit(run).result()


TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


class Tun:
    """Layer-3 TUN device; closing it removes the device and its routes."""

    def __init__(self, name: str = "ikp0", mtu: int = 1400) -> None:
        self.name = name
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        try:
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
            self.index = netlink(lambda ipr: ipr.link_lookup(ifname=name)[0])
            netlink(lambda ipr: ipr.link("set", index=self.index, mtu=mtu, state="up"))
        except Exception:
            os.close(self.fd)
            raise
        self.routes: set[str] = set()

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

    def close(self) -> None:
        os.close(self.fd)
