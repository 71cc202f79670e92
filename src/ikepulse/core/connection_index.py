"""The daemon's connections, looked up by name and by the addresses of an IKE_SA_INIT.

With thousands of connections, scanning them all for each new peer (and parsing every
``remote_addrs`` entry each time) made setting up N tunnels cost N²: the answers are kept
per address pair, bounded, and forgotten on reload.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..wire.enums import IdType
from .connection import ConnectionConfig, Identity, matching

MATCHES_KEPT = 4096
"""Address pairs whose matching connections are remembered (all forgotten when full)."""


class Connections:
    """An immutable set of connections with indexed look-ups."""

    def __init__(self, connections: Iterable[ConnectionConfig]) -> None:
        self.all = tuple(connections)
        self.by_name = {connection.name: connection for connection in self.all}
        self.peers = frozenset(
            address
            for connection in self.all
            for address in connection.remote_addrs
            if "/" not in address and address != "%any"
        )
        """Addresses some connection names as its peer exactly (a gateway we know)."""
        self._matches: dict[tuple[str, str, int], tuple[ConnectionConfig, ...]] = {}

    def matching(self, remote: str, local: str, version: int) -> tuple[ConnectionConfig, ...]:
        """``connection.matching`` for an IKE_SA_INIT from ``remote`` to ``local`` of IKE
        ``version`` (a connection of version 0 takes both)."""
        key = (remote, local, version)
        found = self._matches.get(key)
        if found is None:
            if len(self._matches) >= MATCHES_KEPT:
                self._matches.clear()
            admitted = matching(self.all, remote, local)
            found = tuple(c for c in admitted if c.version in (0, version))
            self._matches[key] = found
        return found


SMALL = 16
"""Fewer candidates than this are scanned as they are."""
_INDEXES: dict[int, tuple[tuple[ConnectionConfig, ...], dict, list]] = {}


def narrowed(
    candidates: tuple[ConnectionConfig, ...], peer: Identity
) -> tuple[ConnectionConfig, ...] | list[ConnectionConfig]:
    """The candidates whose ``remote_id`` can fit ``peer`` at all, in configuration order:
    those naming exactly ``peer`` and those with a pattern (``%any``, ``*``, a DN, which
    matches by value). Ten thousand site-to-site connections on one address pair are not
    scored one by one for every IKE_AUTH."""
    if len(candidates) < SMALL:
        return candidates
    kept = _INDEXES.get(id(candidates))
    if kept is None or kept[0] is not candidates:
        if len(_INDEXES) >= 64:
            _INDEXES.clear()
        exact: dict[Identity, list[int]] = {}
        patterns: list[int] = []
        for i, connection in enumerate(candidates):
            rid = connection.remote_id
            if rid is None or rid.id_type == IdType.ID_DER_ASN1_DN or b"*" in rid.data:
                patterns.append(i)
            else:
                exact.setdefault(rid, []).append(i)
        kept = _INDEXES[id(candidates)] = (candidates, exact, patterns)
    _, exact, patterns = kept
    return [candidates[i] for i in sorted(exact.get(peer, []) + patterns)]
