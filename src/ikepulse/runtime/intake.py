"""IKE datagrams served by priority when they come faster than the core can take them.

Sockets are read in batches (``udp.Endpoint``); every IKE datagram lands here first and is
sorted by its header alone: a request that would create a new IKE SA (an IKE_SA_INIT
request, an IKEv1 first phase 1 message) waits in a bounded queue, everything else (IKE_AUTH,
traffic of established SAs, responses to our requests) is served first. New-SA work gets a
time budget per round; when its queue is full the oldest waiting request is dropped and
counted (the initiator retransmits, RFC 7296 §2.1). ESP never comes through here, but it
goes first: ``urgent`` (reading what the ESP, TUN and UDP sockets hold) runs at the start
of every round and every ``URGENT_EVERY`` seconds of new-SA work, so a tunnel's packets wait
for one IKE message at most, not for a round of a flood, and the sockets are emptied into
these queues faster than a flood fills them (the kernel drops without looking)."""

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
URGENT_EVERY = 0.002
"""Seconds of new-SA work between two looks at established traffic (``urgent``)."""

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
        urgent: Callable[[], None] = lambda: None,
    ) -> None:
        """``receive`` hands one datagram to the core, ``done`` runs once after a round
        (send and re-arm the timer), ``schedule`` runs a callable on the next loop turn,
        ``urgent`` serves established traffic before and within a round."""
        self.receive, self.done, self.schedule = receive, done, schedule
        self.urgent = urgent
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
        """One round: established traffic, everything that is not new work, then new work
        within the budget, with established traffic served again every URGENT_EVERY."""
        self._scheduled = False
        new, clock = self.new, self.clock
        self.serve_established()
        now = clock()
        until, look = now + self.budget, now + URGENT_EVERY
        while new and now < until:
            if now >= look:
                self.serve_established()  # may read IKE_AUTH: served before more new work
                look = clock() + URGENT_EVERY
            self.receive(*new.popleft())
            now = clock()
        self.done()
        if new:
            self.wake()

    def serve_established(self) -> None:
        """Read what the sockets hold (``urgent``), then serve everything queued that is not
        new-SA work: answers to our requests, the requests of established SAs, IKE_AUTH."""
        self.urgent()
        first = self.first
        while first:
            self.receive(*first.popleft())

    def __len__(self) -> int:
        return len(self.first) + len(self.new)
