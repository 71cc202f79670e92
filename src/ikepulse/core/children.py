"""The CHILD SAs of one IKE SA, one entry each with its phase and limits (RFC 7296 §1.3,
§2.8, §2.8.1, §2.25.1).

Each CHILD SA is a ``ChildEntry``: the negotiated ``ChildSa``, when it is rekeyed or closed
(``ChildLimits``), its ``ChildPhase``, and what a rekey collision left to decide. ``due(now)``
says which CHILD SAs need a rekey or have expired; the verbs (install, rekey, delete, ...)
start exchanges through the IKE SA, seen as a ``hosts.ChildHost``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .child_sa import ChildLimits, ChildSa
from .connection import ChildConfig
from .events import ChildSaDeleted, ChildSaRekeyed, child_installed
from .liveness import earliest
from .randomness import fraction
from .renewal import retry_delay
from .state import IdentityEnum, checked
from .task import Purpose

if TYPE_CHECKING:
    from .hosts import ChildHost


class ChildPhase(IdentityEnum):
    """Where a CHILD SA is in its life, shown in status."""

    INSTALLED = "INSTALLED"
    """Carrying traffic; rekeyed or closed when its limits say so."""
    REKEYING = "REKEYING"
    """Our CREATE_CHILD_SA with REKEY_SA is queued or in flight (§1.3.3)."""
    REKEYED = "REKEYED"
    """A successor exists; only the hard limits still apply until it is deleted (§2.8)."""
    DELETING = "DELETING"
    """We sent (or queued) its Delete (§1.4.1)."""
    DELETED = "DELETED"
    """Gone, by either side; the entry lives on only in the tasks that held it."""


TRANSITIONS: dict[ChildPhase, frozenset[ChildPhase]] = {
    ChildPhase.INSTALLED: frozenset(
        {ChildPhase.REKEYING, ChildPhase.REKEYED, ChildPhase.DELETING, ChildPhase.DELETED}
    ),
    ChildPhase.REKEYING: frozenset(
        {ChildPhase.INSTALLED, ChildPhase.REKEYED, ChildPhase.DELETING, ChildPhase.DELETED}
    ),
    ChildPhase.REKEYED: frozenset({ChildPhase.DELETING, ChildPhase.DELETED}),
    ChildPhase.DELETING: frozenset({ChildPhase.DELETED}),
    ChildPhase.DELETED: frozenset(),
}


LIVE = frozenset({ChildPhase.INSTALLED, ChildPhase.REKEYING})
"""Phases of a CHILD SA that carries its child (not one replaced or being deleted by us)."""

_REPLACEABLE = frozenset({ChildPhase.INSTALLED, ChildPhase.REKEYING, ChildPhase.REKEYED})
"""Phases in which a new CHILD SA makes an entry REKEYED (not one being deleted)."""


@dataclass(slots=True, eq=False)
class ChildEntry:
    child: ChildSa
    limits: ChildLimits
    phase: ChildPhase = ChildPhase.INSTALLED
    deleted_by_peer: bool = False
    collision_nonces: tuple[bytes, bytes] | None = None
    """(peer's Ni, our Nr) of a rekey of this SA we answered while rekeying it ourselves
    (§2.8.1); our own rekey's outcome compares nonces with them."""

    def to(self, new: ChildPhase) -> None:
        self.phase = checked(TRANSITIONS, self.phase, new, "CHILD SA")

    @property
    def spi_in(self) -> bytes:
        return self.child.spi_in


@dataclass(frozen=True, slots=True)
class Rekey:
    """A rekey limit (time, bytes or packets) was reached."""

    entry: ChildEntry


@dataclass(frozen=True, slots=True)
class Expire:
    """A hard limit ran out before a rekey replaced the CHILD SA."""

    entry: ChildEntry


class Children:
    """The CHILD SAs in the order they were installed; iterating yields ``ChildSa``."""

    def __init__(self, sa: ChildHost) -> None:
        self._sa = sa
        self._entries: dict[bytes, ChildEntry] = {}

    def __iter__(self):
        return iter([entry.child for entry in self._entries.values()])

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> ChildSa:
        return list(self._entries.values())[index].child

    def entries(self) -> list[ChildEntry]:
        return list(self._entries.values())

    def spis_in(self) -> tuple[bytes, ...]:
        """The inbound SPIs of the entries, in order (for the SA index, after every event)."""
        return tuple(self._entries)

    def shape(self) -> tuple:
        """(entry, phase, CHILD SA) of every entry: equal shapes, equal CHILD SA state for
        the reconciler (``core.sa_index.plan_inputs``)."""
        return tuple([(e, e.phase, e.child) for e in self._entries.values()])

    def entry(self, child: ChildSa) -> ChildEntry | None:
        """The live entry of ``child``, or None if it is gone."""
        entry = self._entries.get(child.spi_in)
        return entry if entry is not None and entry.child == child else None

    def by_spi_in(self, spi: bytes) -> ChildEntry | None:
        return self._entries.get(spi)

    def by_spi_out(self, spi: bytes) -> ChildEntry | None:
        return next((e for e in self._entries.values() if e.child.spi_out == spi), None)

    def hand_over(self) -> list[ChildEntry]:
        """Give every entry to the IKE SA that replaces this one (§2.18)."""
        entries, self._entries = list(self._entries.values()), {}
        return entries

    def take(self, entries: list[ChildEntry], now: float) -> None:
        """The entries of the IKE SA this one replaces. A rekey or delete the old IKE SA
        had only queued is lost with its queue, so it is started again from here."""
        for entry in entries:
            self._entries[entry.spi_in] = entry
            if entry.phase is ChildPhase.REKEYING:
                entry.to(ChildPhase.INSTALLED)
                self.rekey(entry.child, now)
            elif entry.phase is ChildPhase.DELETING:
                self.delete(entry, now)

    # --- verbs -------------------------------------------------------------------------

    def install(
        self,
        child: ChildSa,
        now: float,
        replaces: ChildEntry | None = None,
        initiated: bool | None = None,
        outbound: bool = True,
        wait_for_peer: bool = False,
    ) -> ChildEntry:
        """Install a CHILD SA; ``initiated`` is our role in the exchange that made it (it
        orders the keys, §2.17), ``replaces`` the CHILD SA it rekeys. Without ``outbound``
        it only receives (a redundant SA of a rekey collision, deleted next); with
        ``wait_for_peer`` a successor is sent on once the peer uses it or its predecessor
        goes (IKEv1: the peer installs only after the exchange's last message)."""
        sa = self._sa
        initiated = sa.initiator if initiated is None else initiated
        child = replace(child, installed_at=now)
        config = sa.connection.child(child.name)
        entry = ChildEntry(child, ChildLimits.for_config(config, now, fraction(sa.rng)))
        self._entries[child.spi_in] = entry
        if replaces is not None and replaces.phase in _REPLACEABLE:
            replaces.limits.rekeyed()
            replaces.to(ChildPhase.REKEYED)
        succeeds = replaces.child if replaces is not None else None
        if replaces is None and not initiated:
            succeeds = sa.manager.reauthenticated_copy(sa, child)
        defer = (succeeds is not None and (wait_for_peer or not initiated)) or not outbound
        sa.emit(child_installed(sa, child, initiated, succeeds, defer, entry.limits))
        if replaces is not None:
            sa.emit(ChildSaRekeyed(sa.name, child.name, replaces.spi_in, child.spi_in))
        return entry

    def remove(self, entry: ChildEntry, by_peer: bool) -> None:
        if entry.phase is ChildPhase.DELETED:
            return
        del self._entries[entry.spi_in]
        entry.deleted_by_peer = by_peer
        entry.to(ChildPhase.DELETED)
        self._sa.manager.release_esp_spi(entry.spi_in)
        child = entry.child
        self._sa.emit(
            ChildSaDeleted(self._sa.name, child.name, child.spi_in, child.spi_out, by_peer)
        )

    def create(self, config: ChildConfig, now: float) -> None:
        """A new CHILD SA with CREATE_CHILD_SA (§1.3.1)."""
        self._sa.start(Purpose.CREATE_CHILD, now, config)

    def rekey(self, child: ChildSa, now: float) -> bool:
        """CREATE_CHILD_SA with REKEY_SA (§1.3.3); False if it is gone or not installed
        (a rekey of it is under way, or it is rekeyed or being deleted)."""
        entry = self.entry(child)
        if entry is None or entry.phase is not ChildPhase.INSTALLED:
            return False
        entry.to(ChildPhase.REKEYING)
        self._sa.start(Purpose.REKEY_CHILD, now, self._sa.connection.child(child.name), entry)
        return True

    def rekey_refused(self, entry: ChildEntry, now: float) -> None:
        """The peer refused our rekey: try again a little later (§2.25)."""
        if entry.phase is ChildPhase.REKEYING:
            entry.to(ChildPhase.INSTALLED)
            entry.limits.rekey_at = now + retry_delay(fraction(self._sa.rng))

    def delete(self, entry: ChildEntry, now: float) -> None:
        """Delete a CHILD SA with an INFORMATIONAL exchange (§1.4.1)."""
        if entry.phase is not ChildPhase.DELETED:
            entry.to(ChildPhase.DELETING)
        self._sa.start(Purpose.DELETE_CHILD, now, (entry.spi_in,))

    def act(self, due: Rekey | Expire | None, now: float) -> None:
        """Start what ``due`` or ``usage`` asked for."""
        if isinstance(due, Rekey):
            self.rekey(due.entry.child, now)
        elif isinstance(due, Expire):  # a hard limit ran out before a rekey replaced it
            due.entry.limits = ChildLimits()
            self.delete(due.entry, now)

    # --- what is due -------------------------------------------------------------------

    def deadline(self) -> float | None:
        at = None
        for entry in self._entries.values():
            if entry.phase is ChildPhase.INSTALLED:
                at = earliest(at, entry.limits.rekey_at)
            if entry.phase is not ChildPhase.DELETING:
                at = earliest(at, entry.limits.expires_at)
        return at

    def due(self, now: float) -> list[Rekey | Expire]:
        out: list[Rekey | Expire] = []
        for entry in self._entries.values():
            limits = entry.limits
            if entry.phase is ChildPhase.DELETING:
                continue
            if limits.expires_at is not None and now >= limits.expires_at:
                out.append(Expire(entry))
            elif (
                entry.phase is ChildPhase.INSTALLED
                and limits.rekey_at is not None
                and now >= limits.rekey_at
            ):
                out.append(Rekey(entry))
        return out

    def usage(self, spi_in: bytes, octets: int, packets: int) -> Rekey | Expire | None:
        """Bytes and packets of a CHILD SA's busier direction, from the data plane."""
        entry = self._entries.get(spi_in)
        if entry is None or entry.phase is ChildPhase.DELETING:
            return None
        reached = entry.limits.volume(octets, packets)
        if reached == "life":
            return Expire(entry)
        if reached == "rekey":
            return Rekey(entry)
        return None
