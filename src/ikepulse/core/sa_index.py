"""The SA manager's table of IKE SAs with the indexes a gateway with thousands of them needs:
the next deadline (slots of ``SLOT`` seconds in a heap), IKE SAs by connection name, CHILD SAs
by inbound SPI.

Nothing is recomputed for every SA per event. An SA is *touched* when something may have
changed it (a datagram for it, its timer, a verb, ESP activity, its creation); ``refresh``
files again only the touched SAs and the others of their connections (an IKE SA changes its
siblings: unique = replace, reauthentication, IKE rekey, IKEv1 hand-over of IPsec SAs, §2.8,
§2.18). Deadlines are filed in time slots, and a moved deadline moves between two slots' sets:
a liveness exchange moves three deadlines, and a heap of SAs would keep each old entry until
it surfaced, every pop a walk of cold entries.

Cost per event: the touched SAs and their connections' other SAs (one or two for a
site-to-site tunnel; every peer of a road-warrior connection shared by many).
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from .nat_mappings import NatMappings
from .state import IkeState

if TYPE_CHECKING:
    from .hosts import TaskHost


HALF_OPEN = (IkeState.CREATED, IkeState.CONNECTING)
SLOT = 1 / 64
"""Seconds per deadline slot (a power of two: ``deadline // SLOT`` is exact)."""


def _drop(groups: dict[str, dict[TaskHost, None]], name: str, sa: TaskHost) -> None:
    group = groups.get(name)
    if group is not None:
        group.pop(sa, None)
        if not group:
            del groups[name]


def plan_inputs(sa: TaskHost) -> tuple:
    """What ``core.reconcile.plan`` reads of an IKE SA past IKE_AUTH. A refile that leaves
    it equal (a liveness check answered, a NAT keepalive, an unchanged deadline) does not
    make the reconciler plan the connection again."""
    renewal, tasks = sa.renewal, sa.tasks
    return (
        sa.state,
        sa.established_at,
        sa.connection,
        sa.remote_identity,
        renewal.idle,
        renewal.reauth_of,
        tasks.busy(),
        sa.children.shape(),
    )


class SaTable(dict):
    """IKE SAs by local SPI (a plain dict to read), indexed as they are touched."""

    def __init__(self) -> None:
        super().__init__()
        self._seq = itertools.count()
        self._order: dict[TaskHost, int] = {}
        self._key: dict[TaskHost, bytes] = {}
        self._dirty: dict[TaskHost, None] = {}
        self._unchecked: dict[TaskHost, None] = {}
        """Touched since ``_settle`` last found nothing to file at once: it looks only at
        these (looking at every touched SA each time cost a round of k datagrams k²)."""
        self._deadline: dict[TaskHost, float] = {}
        self._slots: dict[float, dict[TaskHost, None]] = {}
        """Per slot (``deadline // SLOT``), the SAs whose filed deadline falls in it."""
        self._slot_heap: list[float] = []
        """The slots, each once while it has a set (emptied ones are dropped at the top)."""
        self._name: dict[TaskHost, str] = {}
        self._by_name: dict[str, dict[TaskHost, None]] = {}
        self._up: dict[str, dict[TaskHost, None]] = {}
        """Per connection, its SAs past IKE_SA_INIT and IKE_AUTH: those another SA's change
        can affect (a half-open responder is filed under its first candidate meanwhile)."""
        self._inputs: dict[TaskHost, tuple] = {}
        """Per SA in ``_up``, its ``plan_inputs`` when its connection was last marked
        changed."""
        self._spis: dict[TaskHost, tuple[bytes, ...]] = {}
        self._owner: dict[bytes, TaskHost] = {}
        self._finished: dict[TaskHost, None] = {}
        self._half: set[TaskHost] = set()
        self._opened: dict[TaskHost, None] = {}
        self.esp_seen: dict[bytes, tuple] = {}
        """Per inbound SPI, the ESP activity last fed to liveness (unchanged is not news)."""
        self.changed_names: set[str] = set()
        """Connections refiled since the reconciler last asked (``take_changed``)."""
        self.flows = NatMappings()
        """The UDP flows the SAs behind a NAT keep alive, with their keepalive deadlines."""

    def __setitem__(self, spi: bytes, sa: TaskHost) -> None:
        super().__setitem__(spi, sa)
        self._order[sa] = next(self._seq)
        self._key[sa] = spi
        self._half.add(sa)  # every SA starts with IKE_SA_INIT (or as a rekey's successor)
        self._dirty[sa] = None
        self._unchecked[sa] = None

    def __delitem__(self, spi: bytes) -> None:
        sa = self[spi]
        super().__delitem__(spi)
        self._dirty.pop(sa, None)
        self._unchecked.pop(sa, None)
        self._order.pop(sa, None)
        self._key.pop(sa, None)
        self._file_deadline(sa, None)
        self._finished.pop(sa, None)
        self._half.discard(sa)
        self._file_name(sa, None)
        self._file_spis(sa, ())
        self.flows.file(sa, None, 0.0, 0.0)

    # --- touching ----------------------------------------------------------------------------

    def touch(self, sa: TaskHost | None) -> None:
        """``sa`` may have changed: file it again at the next ``refresh``."""
        if sa is not None:
            self._dirty[sa] = None
            self._unchecked[sa] = None

    def touched(self, sa: TaskHost) -> bool:
        """Touched since it was last filed."""
        return sa in self._dirty

    def touch_all(self) -> None:
        for sa in self.values():
            self._dirty[sa] = None
        self._unchecked = dict(self._dirty)

    def refresh(self) -> None:
        """File the touched SAs, and the other SAs of their connections, again."""
        if not self._dirty:
            return
        touched, self._dirty, self._unchecked = list(self._dirty), {}, {}
        refile: dict[TaskHost, None] = {}
        for sa in touched:
            filed = self._name.get(sa)
            if sa.state not in HALF_OPEN or sa in self._up.get(filed or "", ()):
                refile.update(self._up.get(filed, ()))
                if (name := sa.name) != filed:
                    refile.update(self._up.get(name, ()))
            refile[sa] = None
        for sa in refile:
            if sa in self._order:  # still in the table
                self._refile(sa)

    def _settle(self) -> None:
        """Refresh if a touched SA, or an SA of its connections, is not simply ESTABLISHED
        (it may have left IKE_SA_INIT/IKE_AUTH or ended: what ``take_opened`` and
        ``finished`` report). Otherwise the refile waits for the next question about
        deadlines or names, and an SA touched again meanwhile (an answer received, then
        sent) is filed once."""
        if not self._unchecked:
            return  # nothing touched since the last look found nothing to file
        half, up, names, established = self._half, self._up, self._name, IkeState.ESTABLISHED
        for sa in self._unchecked:
            if sa.state is not established or sa in half:
                self.refresh()
                return
            for name in (names.get(sa), sa.name):
                for other in up.get(name, ()):
                    if other.state is not established:
                        self.refresh()
                        return
        self._unchecked = {}

    def _refile(self, sa: TaskHost) -> None:
        self._file_deadline(sa, sa.get_timer())
        if sa.finished:
            self._finished[sa] = None
        if sa.state in HALF_OPEN:
            self._half.add(sa)
        elif sa in self._half:
            self._half.discard(sa)
            self._opened[sa] = None
        self._file_name(sa, sa.name)
        self._file_spis(sa, sa.children.spis_in())
        flow, interval = sa.keepalive_flow()
        self.flows.file(sa, flow, interval, sa.liveness.last_sent)

    def _file_deadline(self, sa: TaskHost, deadline: float | None) -> None:
        old = self._deadline.get(sa)
        if deadline == old:
            return
        if old is not None:
            self._slots[old // SLOT].pop(sa, None)
        if deadline is None:
            self._deadline.pop(sa, None)
            return
        self._deadline[sa] = deadline
        slot = deadline // SLOT
        members = self._slots.get(slot)
        if members is None:
            self._slots[slot] = members = {}
            heapq.heappush(self._slot_heap, slot)
        members[sa] = None

    def _first_slot(self) -> tuple[float, dict[TaskHost, None]] | None:
        """The earliest slot with an SA in it (emptied slots on the way are dropped)."""
        heap, slots = self._slot_heap, self._slots
        while heap:
            members = slots.get(heap[0])
            if members:
                return heap[0], members
            del slots[heapq.heappop(heap)]
        return None

    def _file_name(self, sa: TaskHost, name: str | None) -> None:
        old = self._name.get(sa)
        up = bool(name) and sa.state not in HALF_OPEN
        if old == name and up == (sa in self._up.get(old or "", ())):  # filed as it is
            if up and self._inputs.get(sa) != (inputs := plan_inputs(sa)):
                self._inputs[sa] = inputs
                self.changed_names.add(name)
            return
        if old and sa in self._up.get(old, ()):
            self.changed_names.add(old)
            _drop(self._up, old, sa)
            self._inputs.pop(sa, None)
        if up:
            self.changed_names.add(name)
            self._up.setdefault(name, {})[sa] = None
            self._inputs[sa] = plan_inputs(sa)
        if old == name:
            return
        if old is not None:
            _drop(self._by_name, old, sa)
            del self._name[sa]
        if name is not None:
            self._name[sa] = name
            self._by_name.setdefault(name, {})[sa] = None

    def _file_spis(self, sa: TaskHost, spis: tuple[bytes, ...]) -> None:
        old = self._spis.get(sa, ())
        if old == spis:
            return
        for spi in old:
            if spi not in spis and self._owner.get(spi) is sa:
                del self._owner[spi]
                self.esp_seen.pop(spi, None)
        for spi in spis:
            self._owner[spi] = sa  # an IKEv1 hand-over or an IKE rekey moves it here
        if spis:
            self._spis[sa] = spis
        else:
            self._spis.pop(sa, None)

    # --- questions ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        self.refresh()
        first = self._first_slot()
        return None if first is None else min(map(self._deadline.__getitem__, first[1]))

    def pop_due(self, now: float) -> list[TaskHost]:
        """The SAs whose filed deadline has come, oldest SA first (as a scan of the table
        would find them); they are filed again when touched."""
        self.refresh()
        due: list[TaskHost] = []
        deadlines, last = self._deadline, now // SLOT
        while (first := self._first_slot()) is not None and first[0] <= last:
            members = first[1]
            came = [sa for sa in members if deadlines[sa] <= now]
            for sa in came:
                del members[sa], deadlines[sa]
            due.extend(came)
            if members:  # the rest of the slot is later than now
                break
        return sorted(due, key=self._order.__getitem__)

    def named(self, name: str) -> list[TaskHost]:
        """The SAs filed under connection ``name``, oldest first."""
        self.refresh()
        group = self._by_name.get(name, ())
        return sorted(group, key=self._order.__getitem__) if len(group) > 1 else list(group)

    def up(self, name: str) -> list[TaskHost]:
        """The SAs of connection ``name`` past IKE_AUTH (final ones too), oldest first."""
        self.refresh()
        group = self._up.get(name, ())
        return sorted(group, key=self._order.__getitem__) if len(group) > 1 else list(group)

    def owner_of(self, spi_in: bytes) -> TaskHost | None:
        """The IKE SA holding the CHILD SA with inbound SPI ``spi_in``."""
        self.refresh()
        sa = self._owner.get(spi_in)
        return sa if sa is not None and sa.children.by_spi_in(spi_in) else None

    def take_opened(self) -> list[TaskHost]:
        """The SAs that left IKE_SA_INIT/IKE_AUTH (up or gone) since the last call."""
        self._settle()
        if not self._opened:
            return []
        opened, self._opened = list(self._opened), {}
        return opened

    def finished(self) -> list[tuple[bytes, TaskHost]]:
        """(key, SA) of the SAs in a final state (for the manager to forget)."""
        self._settle()
        return [(self._key[sa], sa) for sa in self._finished] if self._finished else []

    def take_changed(self) -> set[str]:
        """The connections whose SAs past IKE_AUTH changed since the last call."""
        self.refresh()
        changed, self.changed_names = self.changed_names, set()
        return changed
