"""IKE datagrams served by priority when they come faster than the core can take them.

Sockets are read in batches (``udp.Endpoint``); every IKE datagram lands here first and is
sorted by its header alone: a request that would create a new IKE SA (an IKE_SA_INIT
request, an IKEv1 first phase 1 message) waits in a bounded queue, everything else (IKE_AUTH,
traffic of established SAs, responses to our requests) is served first. New-SA work gets a
time budget per round; when its queue is full the oldest waiting request is dropped and
counted (the initiator retransmits, RFC 7296 §2.1). ESP never comes through here."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

from ..core.admission import creates_sa
from .udp import Address

NEW_WORK_QUEUE = 512
"""IKE_SA_INIT requests waiting at most; the oldest is dropped for a new one."""
NEW_WORK_BUDGET = 0.02
"""Seconds of new-SA work per round before the loop reads its sockets again."""

Receive = Callable[[bytes, Address, Address], None]


class Intake:
    """The IKE datagrams read but not yet processed, in two classes."""

    def __init__(
        self,
        receive: Receive,
        done: Callable[[], None],
        schedule: Callable[[Callable[[], None]], object],
        counters: Counter[str],
        *,
        queue: int = NEW_WORK_QUEUE,
        budget: float = NEW_WORK_BUDGET,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``receive`` hands one datagram to the core, ``done`` runs once after a round
        (send and re-arm the timer), ``schedule`` runs a callable on the next loop turn."""
        self.receive, self.done, self.schedule = receive, done, schedule
        self.counters = counters
        self.budget, self.clock = budget, clock
        self.first: deque[tuple[bytes, Address, Address]] = deque()
        self.new: deque[tuple[bytes, Address, Address]] = deque(maxlen=queue)
        self._scheduled = False

    def add(self, data: bytes, src: Address, dst: Address) -> None:
        if creates_sa(data):
            if len(self.new) == self.new.maxlen:
                self.counters["dropped_ike_sa_init_shed"] += 1
            self.new.append((data, src, dst))
        else:
            self.first.append((data, src, dst))
        self.wake()

    def wake(self) -> None:
        """Run a round (and ``done``) soon even if nothing was added."""
        if not self._scheduled:
            self._scheduled = True
            self.schedule(self.drain)

    def drain(self) -> None:
        """One round: everything that is not new work, then new work within the budget."""
        self._scheduled = False
        first, new = self.first, self.new
        while first:
            self.receive(*first.popleft())
        until = self.clock() + self.budget
        while new and self.clock() < until:
            self.receive(*new.popleft())
        self.done()
        if new:
            self.wake()

    def __len__(self) -> int:
        return len(self.first) + len(self.new)
