"""MOBIKE (RFC 4555) for one IKE SA: what was negotiated, the peer's addresses, the NAT
mapping the peer last reported, and moving when our own addresses change.

``Mobility`` is a part the IKE SA owns; ``roam`` is the IKE SA's reaction to a change of
the host's addresses (the runtime learns them from netlink). Only the original initiator
asks the peer to move (UPDATE_SA_ADDRESSES, §3.5); the responder tells it its new address
list (§3.6), sent from the address it moved to.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire.enums import NotifyType
from ..wire.payloads import NotifyPayload
from .state import IkeState
from .task import Purpose

if TYPE_CHECKING:
    from .hosts import TaskHost

MAX_ADDITIONAL_ADDRESSES = 8
"""Addresses listed at most (strongSwan's limit; some peers dislike long lists)."""

SourceFor = Callable[[str], "str | None"]
"""The host's preferred source address towards a destination (a route lookup), or None."""


HASHES_KEPT = 8
"""NAT-D hashes one SA keeps (addresses and ports of its paths)."""


class Mobility:
    """MOBIKE state of one IKE SA."""

    def __init__(self) -> None:
        self.enabled = False
        """Both sides sent MOBIKE_SUPPORTED in IKE_AUTH (§3.2)."""
        self.original_initiator = False
        """We initiated the first IKE SA of this chain: only we decide on moves (§3.1)."""
        self.peer_addresses: tuple[str, ...] = ()
        """The peer's additional addresses, from its last list (§3.6)."""
        self.nat_mapping: bytes | None = None
        """The peer's last NAT_DETECTION_DESTINATION_IP for us: our public address and port
        as it sees them. A different one in a liveness answer means the NAT remapped (§3.8)."""
        self.announced: frozenset[str] = frozenset()
        """Our additional addresses as last told to the peer."""
        self._hashes: dict[tuple[bytes, bytes, tuple[str, int]], bytes] = {}

    def natd(self, spi_i: bytes, spi_r: bytes, address: tuple[str, int]) -> bytes:
        """``natd_hash``, kept for the few addresses of this SA: every liveness check
        behind a NAT carries and compares four of them (§3.8)."""
        key = (spi_i, spi_r, address)
        digest = self._hashes.get(key)
        if digest is None:
            if len(self._hashes) >= HASHES_KEPT:
                self._hashes.clear()
            digest = self._hashes[key] = natd_hash(spi_i, spi_r, address)
        return digest

    def negotiated(self, original_initiator: bool) -> None:
        self.enabled = True
        self.original_initiator = original_initiator

    def carry_over(self, old: Mobility) -> None:
        """A rekeyed IKE SA (§2.18) keeps MOBIKE and the roles of the original exchange."""
        self.enabled, self.original_initiator = old.enabled, old.original_initiator
        self.peer_addresses, self.nat_mapping = old.peer_addresses, old.nat_mapping
        self.announced = old.announced


def natd_hash(spi_i: bytes, spi_r: bytes, address: tuple[str, int]) -> bytes:
    """SHA-1(SPIi | SPIr | IP | port) as in §2.23."""
    packed = _packed(address[0]) + address[1].to_bytes(2, "big")
    return hashlib.sha1(spi_i + spi_r + packed, usedforsecurity=False).digest()


@functools.lru_cache(maxsize=256)
def _packed(address: str) -> bytes:
    """A host has few addresses; every MOBIKE liveness check behind a NAT hashes them."""
    return ipaddress.ip_address(address).packed


def address_list(addresses: tuple[str, ...], current: str) -> list[NotifyPayload]:
    """ADDITIONAL_IP4/IP6_ADDRESS for our addresses other than ``current``, or
    NO_ADDITIONAL_ADDRESSES (§3.6)."""
    out = []
    for address in addresses:
        if address == current:
            continue
        ip = ipaddress.ip_address(address)
        kind = (
            NotifyType.ADDITIONAL_IP4_ADDRESS
            if ip.version == 4
            else NotifyType.ADDITIONAL_IP6_ADDRESS
        )
        out.append(NotifyPayload(kind, ip.packed))
        if len(out) == MAX_ADDITIONAL_ADDRESSES:
            break
    return out or [NotifyPayload(NotifyType.NO_ADDITIONAL_ADDRESSES)]


def peer_address_list(notifies: list[NotifyPayload]) -> tuple[str, ...] | None:
    """The peer's address list from its notifies; None when it sent none (§3.6)."""
    sizes = {NotifyType.ADDITIONAL_IP4_ADDRESS: 4, NotifyType.ADDITIONAL_IP6_ADDRESS: 16}
    listed = [n for n in notifies if n.type in sizes]
    if not listed and not any(n.type == NotifyType.NO_ADDITIONAL_ADDRESSES for n in notifies):
        return None
    return tuple(str(ipaddress.ip_address(n.data)) for n in listed if len(n.data) == sizes[n.type])


def roam(
    sa: TaskHost, addresses: tuple[str, ...], source_for: SourceFor | None, now: float
) -> None:
    """The host's addresses are now ``addresses``. If ours is gone, move to another of the
    same family (the route's preferred source first) and tell the peer: UPDATE_SA_ADDRESSES
    as original initiator (§3.5), else our address list from the new address (§3.6). If
    ours stays but the others changed, send the new list. Without MOBIKE nothing moves:
    the liveness check finds the broken path."""
    mobility = sa.mobility
    if sa.state is not IkeState.ESTABLISHED or not mobility.enabled:
        return
    current = sa.local[0]
    if current in addresses:
        if frozenset(addresses) - {current} != mobility.announced:
            sa.start(Purpose.MOBIKE_ADDRESSES, now)
        return
    new = _pick(addresses, sa.remote[0], source_for)
    if new is None:
        return  # no address to move to yet; the next change may bring one
    sa.update_hosts((new, sa.local[1]), sa.remote)
    purpose = Purpose.MOBIKE_UPDATE if mobility.original_initiator else Purpose.MOBIKE_ADDRESSES
    sa.start(purpose, now)


def _pick(addresses: tuple[str, ...], peer: str, source_for: SourceFor | None) -> str | None:
    version = ipaddress.ip_address(peer).version
    usable = [a for a in addresses if ipaddress.ip_address(a).version == version]
    preferred = source_for(peer) if source_for is not None else None
    if preferred in usable:
        return preferred
    return usable[0] if usable else None
