"""The host's addresses, watched through netlink (pyroute2): what MOBIKE announces and
moves between (RFC 4555 §3.5, §3.6)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR

from .tun import netlink

log = logging.getLogger("ikepulse.net")
logging.getLogger("pyroute2").setLevel(logging.INFO)  # its debug lines would drown ours

IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
_UNUSABLE = IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE


def usable(messages) -> tuple[str, ...]:
    """The addresses of RTM_NEWADDR ``messages`` an IKE SA can use: not loopback, not
    link-local, not tentative, deprecated or failed (in the kernel's order)."""
    out = []
    for msg in messages:
        raw = msg.get_attr("IFA_ADDRESS")
        if raw is None:
            continue
        address = ipaddress.ip_address(raw)
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if address.is_loopback or address.is_link_local or flags & _UNUSABLE:
            continue
        out.append(str(address))
    return tuple(dict.fromkeys(out))


def source_for(destination: str) -> str | None:
    """The preferred source address of the route to ``destination``, or None."""

    def lookup(ipr) -> str | None:
        try:
            routes = ipr.route("get", dst=destination)
        except NetlinkError:
            return None
        for route in routes:
            source = route.get_attr("RTA_PREFSRC")
            if source:
                return source
        return None

    return netlink(lookup)


class AddressWatcher:
    """Calls ``on_change(addresses)`` whenever an address appears or goes away."""

    def __init__(self, on_change: Callable[[tuple[str, ...]], Awaitable[None]]) -> None:
        self.on_change = on_change
        self._ipr: AsyncIPRoute | None = None
        self._task: asyncio.Task | None = None

    async def addresses(self) -> tuple[str, ...]:
        async with AsyncIPRoute() as ipr:
            return usable([m async for m in await ipr.get_addr()])

    async def start(self) -> tuple[str, ...]:
        """Subscribe to address events; the current addresses."""
        self._ipr = AsyncIPRoute()
        await self._ipr.bind(groups=RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        self._task = asyncio.create_task(self._watch())
        return await self.addresses()

    async def _watch(self) -> None:
        while True:
            changed = False
            async for msg in self._ipr.get():
                changed = changed or msg.get("event") in ("RTM_NEWADDR", "RTM_DELADDR")
            if changed:
                try:
                    await self.on_change(await self.addresses())
                except Exception:  # one bad event must not end the watch
                    log.exception("handling an address change failed")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
