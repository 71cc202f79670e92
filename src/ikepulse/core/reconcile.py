"""Exactly one SA: each connection converges to one IKE SA per peer and one CHILD SA pair
per configured child (DESIGN.md §4), whatever left it with more or fewer.

Extras come from simultaneous initiation, restarts on both sides, a peer that keeps
duplicates (strongSwan's ``unique = no``) or the same child created twice; a child goes
missing when the peer deletes it alone or refuses to create it. ``plan`` looks at the IKE
SAs and says what to do and when; ``Reconciler.act`` does what is due. It only acts on
*settled* IKE SAs (established, not being renewed, nothing of ours queued or in flight), so
a make-before-break rekey or reauthentication, which legitimately holds two for a moment,
is never touched, and every decision is made again from scratch once things have settled.

Survivor rule, computed the same way by both ends so that two ikepulse peers never delete
both: among duplicate IKE SAs keep one carrying CHILD SAs, then the one whose SPIs
(``spi_i || spi_r``) sort lowest; among duplicate CHILD SA pairs keep the one whose lower
SPI sorts lowest. The others are deleted with an INFORMATIONAL exchange, so the peer learns
it (a crossing delete of the same SA from the peer is harmless). Nothing happens until the
newest duplicate is GRACE old: a delete or a reauthentication the peer has under way comes
first.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .children import LIVE, ChildEntry, ChildPhase
from .connection import ChildConfig, CloseAction, StartAction, Unique
from .randomness import fraction
from .renewal import retry_delay
from .state import IkeState

if TYPE_CHECKING:
    from .hosts import TaskHost

GRACE = 2.0
"""Seconds the newest of a set of duplicates (or a new IKE SA missing a child) is left alone."""


@dataclass(frozen=True, slots=True)
class DeleteIke:
    """A duplicate IKE SA to delete."""

    sa: TaskHost


@dataclass(frozen=True, slots=True)
class DeleteChild:
    """A duplicate CHILD SA pair to delete."""

    sa: TaskHost
    entry: ChildEntry


@dataclass(frozen=True, slots=True)
class CreateChild:
    """A configured child the IKE SA should carry but does not."""

    sa: TaskHost
    config: ChildConfig


Action = DeleteIke | DeleteChild | CreateChild


_NONE: frozenset[str] = frozenset()


def settled(sa: TaskHost) -> bool:
    """Established, not being renewed, no request of ours queued or in flight but a
    liveness check (which would otherwise make every check plan each connection twice)."""
    return (
        sa.state is IkeState.ESTABLISHED
        and sa.renewal.idle
        and sa.renewal.reauth_of is None
        and not sa.tasks.busy()
    )


def ike_survivor_key(sa: TaskHost) -> tuple[bool, bytes]:
    """Lowest wins: carries a CHILD SA, then the lowest SPIs (the same at both ends)."""
    return (not any(e.phase in LIVE for e in sa.children.entries()), sa.spi_i + sa.spi_r)


def child_survivor_key(entry: ChildEntry) -> tuple[bytes, bytes]:
    """Lowest wins: the pair's SPIs, lower one first (the same at both ends)."""
    spis = sorted((entry.child.spi_in, entry.child.spi_out))
    return spis[0], spis[1]


def duplicate_ike_sas(sas: Iterable[TaskHost]) -> list[list[TaskHost]]:
    """Established IKE SAs grouped by connection and peer identity, groups of two or more
    (``unique = never`` keeps duplicates on purpose)."""
    groups: dict[tuple, list[TaskHost]] = defaultdict(list)
    for sa in sas:
        if sa.state is IkeState.ESTABLISHED and sa.connection is not None:
            if sa.connection.unique is not Unique.NEVER:
                groups[(sa.name, sa.remote_identity)].append(sa)
    return [group for group in groups.values() if len(group) > 1]


def wanted(config: ChildConfig, start_action: StartAction) -> bool:
    """The configuration says the child should always be up."""
    return config.close_action is CloseAction.START or start_action is StartAction.START


def plan(
    sas: list[TaskHost], released: dict[bytes, set[str]], retry: dict[tuple[bytes, str], float]
) -> list[tuple[float, Action]]:
    """Every correction with the time it becomes due. ``released``: per IKE SA (local SPI),
    the children the peer closed that stay closed (close_action none or trap); ``retry``:
    per (IKE SA, child) when a missing child may be created again."""
    out: list[tuple[float, Action]] = []
    duplicated: set[int] = set()
    for group in duplicate_ike_sas(sas) if len(sas) > 1 else ():  # replanned per event
        duplicated.update(id(sa) for sa in group)
        if all(settled(sa) for sa in group):
            at = max(sa.established_at for sa in group) + GRACE
            keep = min(group, key=ike_survivor_key)
            out += [(at, DeleteIke(sa)) for sa in group if sa is not keep]
    for sa in sas:
        if not settled(sa) or sa.connection is None:
            continue
        by_child: dict[tuple, list[ChildEntry]] = defaultdict(list)
        entries = sa.children.entries()
        for entry in entries if len(entries) > 1 else ():  # duplicates need two
            by_child[entry.child.carries].append(entry)
        for entries in by_child.values():
            if len(entries) > 1 and all(e.phase is ChildPhase.INSTALLED for e in entries):
                at = max(e.child.installed_at for e in entries) + GRACE
                keep = min(entries, key=child_survivor_key)
                out += [(at, DeleteChild(sa, e)) for e in entries if e is not keep]
        if id(sa) in duplicated:
            continue  # one IKE SA first: the survivor gets what is missing
        present = {entry.child.name for entry in sa.children.entries()}
        closed = released.get(sa.local_spi, _NONE)
        for config in sa.connection.children:
            if config.name in present or config.name in closed:
                continue
            if wanted(config, sa.connection.start_action):
                at = max(sa.established_at + GRACE, retry.get((sa.local_spi, config.name), 0.0))
                out.append((at, CreateChild(sa, config)))
    return out


class Reconciler:
    """What the reconciler remembers: children the peer closed for good, and when a missing
    child may be created again after an attempt."""

    def __init__(self) -> None:
        self.released: dict[bytes, set[str]] = defaultdict(set)
        self.retry: dict[tuple[bytes, str], float] = {}
        self._retry_keys: dict[bytes, set[tuple[bytes, str]]] = defaultdict(set)
        self._plans: dict[str, list[tuple[float, Action]]] = {}
        self._at: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self.stale: set[str] = set()
        """Connections to plan again for what the reconciler itself changed (what it keeps
        about them, or a plan taken by ``due``); the SA index reports the SAs' changes."""

    def release(self, sa: TaskHost, child: str) -> None:
        """The peer closed ``child`` and its close_action keeps it closed on ``sa``."""
        self.released[sa.local_spi].add(child)
        self.stale.add(sa.name)

    def attempted(self, sa: TaskHost, child: str, now: float) -> None:
        """``child`` is being created on ``sa``: if that fails, try again only later."""
        self.released.get(sa.local_spi, set()).discard(child)
        self.retry[(sa.local_spi, child)] = now + retry_delay(fraction(sa.rng))
        self._retry_keys[sa.local_spi].add((sa.local_spi, child))
        self.stale.add(sa.name)

    def replan(self, name: str, sas: list[TaskHost]) -> None:
        """Plan again for connection ``name``, whose IKE SAs (``sas``) changed: the
        reconciler looks only at connections that changed since its last pass."""
        planned = plan(sas, self.released, self.retry) if name else []
        if planned:
            self._plans[name] = planned
            at = min(at for at, _ in planned)
            if self._at.get(name) != at:
                self._at[name] = at
                heapq.heappush(self._heap, (at, next(self._seq), name))
        else:
            self._plans.pop(name, None)
            self._at.pop(name, None)

    def take_stale(self) -> set[str]:
        stale, self.stale = self.stale, set()
        return stale

    def deadline(self) -> float | None:
        heap = self._heap
        while heap and self._at.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[Action]:
        """The planned actions due at ``now``; their connections are planned again once
        touched."""
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            at, _, name = heapq.heappop(heap)
            if self._at.get(name) == at:
                del self._at[name]
                self.stale.add(name)
                out += [a for when, a in self._plans.pop(name) if when <= now]
        return out

    def act(self, counters: Counter[str], now: float) -> list[TaskHost]:
        """Do what is due; the IKE SAs acted on."""
        acted = []
        for action in self.due(now):
            acted.append(action.sa)
            if isinstance(action, DeleteIke):
                counters["overlaps_resolved"] += 1
                counters["duplicate_ike_sas_deleted"] += 1
                action.sa.delete(now)
            elif isinstance(action, DeleteChild):
                counters["overlaps_resolved"] += 1
                counters["duplicate_child_sas_deleted"] += 1
                action.sa.children.delete(action.entry, now)
            else:
                counters["missing_child_sas_created"] += 1
                self.attempted(action.sa, action.config.name, now)
                action.sa.children.create(action.config, now)
        return acted

    def forget(self, spi: bytes) -> None:
        """The IKE SA with local SPI ``spi`` is gone: what was kept about it goes too."""
        self.released.pop(spi, None)
        for key in self._retry_keys.pop(spi, ()):
            self.retry.pop(key, None)

    def acquire(self, sas: Iterable[TaskHost], now: float) -> int:
        """Traffic hit a trap of a connection whose IKE SA is up (``sas``): create the
        configured children it lacks; how many were started."""
        started = 0
        for sa in sas:
            if sa.state is not IkeState.ESTABLISHED or sa.tasks.has_queued or sa.tasks.in_flight():
                continue
            present = {entry.child.name for entry in sa.children.entries()}
            for config in sa.connection.children:
                if config.name not in present:
                    self.attempted(sa, config.name, now)
                    sa.children.create(config, now)
                    started += 1
            break
        return started


def overlaps(sas: Iterable[TaskHost], name: str) -> dict[str, int]:
    """How many established IKE SAs of connection ``name``, and CHILD SA pairs of each of
    its children, there are beyond one (exporters for strongSwan count the same)."""
    up = [sa for sa in sas if sa.name == name and sa.state is IkeState.ESTABLISHED]
    names = [e.child.name for sa in up for e in sa.children.entries() if e.phase in LIVE]
    extra_children = len(names) - len(set(names))  # each pair beyond the first of its name
    return {"ike_sas": max(0, len(up) - 1), "child_sas": extra_children}
