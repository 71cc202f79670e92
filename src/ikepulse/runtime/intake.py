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
these queues faster than a flood fills them (the kernel drops without looking).

Rounds are moderated once they come thick: when the last two began less than ``gap``
apart, one that only routine traffic asks for (INFORMATIONAL exchanges: liveness checks)
starts no earlier than ``gap`` after the last, unless ``ROUND_BATCH`` datagrams wait. A
gateway with thousands of idle tunnels has a liveness exchange every few milliseconds, and
a round that wakes a cold process costs more than the exchange itself: one round per gap
serves them together. A quiet daemon serves a datagram at once, and SAs coming up or being
renewed (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, IKEv1 phase 1 and Quick Mode) never wait."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

from ..core.admission import creates_sa, routine
from .udp import Address

NEW_WORK_QUEUE = 512
"""IKE_SA_INIT requests waiting at most; the oldest is dropped for a new one."""
NEW_WORK_BUDGET = 0.02
"""Seconds of new-SA work per round before the loop reads its sockets again."""
URGENT_EVERY = 0.002
"""Seconds of new-SA work between two looks at established traffic (``urgent``)."""
ROUND_BATCH = 64
"""Datagrams of established SAs waiting that start a round at once, within the gap."""

Receive = Callable[[bytes, Address, Address], None]
Schedule = Callable[[Callable[[], None], float], object]
"""Run a callable after a delay in seconds; returns a handle with ``cancel()`` (or None)."""


class Intake:
    """The IKE datagrams read but not yet processed, in two classes."""

    def __init__(
        self,
        receive: Receive,
        done: Callable[[], None],
        schedule: Schedule,
        counters: Counter[str],
        *,
        queue: int = NEW_WORK_QUEUE,
        budget: float = NEW_WORK_BUDGET,
        gap: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        urgent: Callable[[], None] = lambda: None,
    ) -> None:
        """``receive`` hands one datagram to the core, ``done`` runs once after a round
        (send and re-arm the timer), ``schedule`` runs a callable after a delay,
        ``urgent`` serves established traffic before and within a round."""
        self.receive, self.done, self.schedule = receive, done, schedule
        self.urgent = urgent
        self.counters = counters
        self.budget, self.gap, self.clock = budget, gap, clock
        self.first: deque[tuple[bytes, Address, Address]] = deque()
        self.new: deque[tuple[bytes, Address, Address]] = deque(maxlen=queue)
        self.started = self._before = -2 * gap
        """When the last round began (the daemon's timer rounds count too), and the one
        before it."""
        self._scheduled = False
        self._hurried = False
        self._handle: object = None

    def add(self, data: bytes, src: Address, dst: Address) -> None:
        if creates_sa(data):
            if len(self.new) == self.new.maxlen:
                self.counters["dropped_ike_sa_init_shed"] += 1
            self.new.append((data, src, dst))
            self.wake(hurry=True)
        else:
            self.first.append((data, src, dst))
            self.wake(hurry=not routine(data) or len(self.first) >= ROUND_BATCH)

    def began(self, now: float) -> None:
        """A round of IKE work begins (this intake's, or the daemon's timer)."""
        self._before, self.started = self.started, now

    def next_round(self) -> float:
        """The earliest a round that only established traffic asks for may start."""
        if self.started - self._before < self.gap:
            return self.started + self.gap
        return self.started

    def wake(self, hurry: bool = False) -> None:
        """Run a round (and ``done``) even if nothing was added: at the next loop turn if
        ``hurry``, else no earlier than the gap after the last round began."""
        if self._scheduled:
            if not hurry or self._hurried or self._handle is None:
                return
            self._handle.cancel()
        delay = 0.0 if hurry else max(0.0, self.next_round() - self.clock())
        self._scheduled, self._hurried = True, delay == 0.0
        self._handle = self.schedule(self.drain, delay)

    def drain(self) -> None:
        """One round: established traffic, everything that is not new work, then new work
        within the budget, with established traffic served again every URGENT_EVERY."""
        self._scheduled = False
        new, clock = self.new, self.clock
        self.began(clock())
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
            self.wake(hurry=True)

    def serve_established(self) -> None:
        """Read what the sockets hold (``urgent``), then serve everything queued that is not
        new-SA work: answers to our requests, the requests of established SAs, IKE_AUTH."""
        self.urgent()
        first = self.first
        while first:
            self.receive(*first.popleft())

    def __len__(self) -> int:
        return len(self.first) + len(self.new)
