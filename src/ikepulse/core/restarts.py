"""Re-establishing connections whose peer died (swanctl.conf ``dpd_action = restart``) or
deleted the IKE SA (``close_action = start``), with exponential backoff and jitter, never two
IKE SAs for one connection (DESIGN.md §4)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .connection import ChildConfig, ConnectionConfig
from .events import Address
from .liveness import LivenessPolicy, restart_delay

if TYPE_CHECKING:
    from .hosts import TaskHost


@dataclass(slots=True)
class Restart:
    """A connection to re-establish."""

    local: Address
    remote: Address
    since: float
    """When its peer was declared dead."""
    attempt: int = 0
    at: float | None = None
    """When the next attempt starts; None while one is under way."""
    children: tuple[str, ...] | None = None
    """The children to bring up (None: all of the connection's)."""

    def configs(self, connection: ConnectionConfig) -> list[ChildConfig] | None:
        names = self.children
        return None if names is None else [connection.child(name) for name in names]


class Restarts:
    """The restarts of one SA manager, by connection name, with their attempt times in a
    heap: a gateway with many dead peers does not scan them all at every timer tick."""

    def __init__(self) -> None:
        self._by_name: dict[str, Restart] = {}
        self._seq = itertools.count()
        self._order: dict[str, int] = {}
        """Per name, when it was first begun: ``due`` answers in that order."""
        self._heap: list[tuple[float, int, str, Restart]] = []
        """(at, seq, name, restart); an entry is stale once the restart moved or ended."""

    def _schedule(self, name: str, restart: Restart) -> None:
        if restart.at is not None:
            heapq.heappush(self._heap, (restart.at, next(self._seq), name, restart))

    def _current(self, entry: tuple[float, int, str, Restart]) -> bool:
        at, _, name, restart = entry
        return self._by_name.get(name) is restart and restart.at == at

    def get(self, name: str) -> Restart | None:
        return self._by_name.get(name)

    def begin(
        self,
        name: str,
        local: Address,
        remote: Address,
        now: float,
        children: tuple[str, ...] | None = None,
    ) -> None:
        """The peer of ``name`` died (or deleted it): the first attempt starts at once."""
        if name not in self._by_name:
            self._order[name] = next(self._seq)
        restart = self._by_name[name] = Restart(local, remote, now, at=now, children=children)
        self._schedule(name, restart)

    def restart(self, sa: TaskHost, now: float, children: tuple[str, ...] | None = None) -> bool:
        """Re-establish ``sa``'s connection (with ``children``, default all); a responder
        only if it knows where the peer is. False if it cannot."""
        connection = sa.connection
        if connection is None or not (sa.initiator or connection.remote_addrs):
            return False
        # Both ports start over (RFC 7296 §2.23): an initiator's SA may have floated to
        # 4500, where an IKE_SA_INIT from port 500 without the non-ESP marker reads as ESP.
        remote = (sa.remote[0], connection.remote_port)
        local = (sa.local[0], connection.local_port)
        self.begin(sa.name, local, remote, now, children)
        return True

    def attempt_failed(
        self, name: str, policy: LivenessPolicy, draw: Callable[[], float], now: float
    ) -> None:
        """The attempt under way failed: the next one after a backoff (``draw()`` gives the
        jitter's random fraction)."""
        restart = self._by_name.get(name)
        if restart is not None and restart.at is None:
            restart.attempt += 1
            restart.at = now + restart_delay(restart.attempt, policy, draw())
            self._schedule(name, restart)

    def end(self, name: str) -> Restart | None:
        """The connection is up again (or taken down): forget its restart."""
        self._order.pop(name, None)
        return self._by_name.pop(name, None)

    def deadline(self) -> float | None:
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[tuple[str, Restart]]:
        """The attempts to start now, in the order their restarts began; each is marked
        under way."""
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._current(entry):
                _, _, name, restart = entry
                restart.at = None
                out.append((name, restart))
        return sorted(out, key=lambda item: self._order[item[0]])
