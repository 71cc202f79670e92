"""The daemon's connections, looked up by name and by the addresses of an IKE_SA_INIT.

With thousands of connections, scanning them all for each new peer (and parsing every
``remote_addrs`` entry each time) made setting up N tunnels cost N²: the answers are kept
per address pair, bounded, and forgotten on reload.
"""

from __future__ import annotations

from collections.abc import Iterable

from .connection import ConnectionConfig, matching

MATCHES_KEPT = 4096
"""Address pairs whose matching connections are remembered (all forgotten when full)."""


class Connections:
    """An immutable set of connections with indexed look-ups."""

    def __init__(self, connections: Iterable[ConnectionConfig]) -> None:
        self.all = tuple(connections)
        self.by_name = {connection.name: connection for connection in self.all}
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
