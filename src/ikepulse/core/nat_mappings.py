"""NAT-T keepalives per UDP flow (RFC 3948 §2.3), with one deadline per flow.

A NAT in front of us keeps one mapping per flow (our address and port, the peer's), whichever
IKE SA's datagrams or ESP refresh it. A keepalive is due when the flow was quiet for the
interval, not when one SA was: IKE SAs to one peer (a connection per subnet pair, thousands
between two gateways) share the flow and keep its mapping for each other. So the flow, not
each SA, has the timer: an idle flow wakes once per interval however many SAs use it.

The SA table files each IKE SA here when it changes (``SaTable._refile``): under its flow
while it is established behind a NAT with keepalives on, under none otherwise.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter

from .events import Address

Flow = tuple[Address, Address]
NAT_KEEPALIVE = b"\xff"
"""A NAT-T keepalive: one octet, 0xFF (RFC 3948 §2.3)."""


class NatMappings:
    """The flows that need keepalives: their SAs, the last send on each, their deadlines."""

    __slots__ = ("_flow_of", "_intervals", "_last", "_filed", "_heap", "_seq")

    def __init__(self) -> None:
        self._flow_of: dict[object, tuple[Flow, float]] = {}
        """Each SA filed, with its flow and the keepalive interval it asks for."""
        self._intervals: dict[Flow, Counter[float]] = {}
        """Per flow, how many of its SAs ask for each interval (the shortest counts)."""
        self._last: dict[Flow, float] = {}
        """The last IKE datagram, ESP packet or keepalive sent on each flow."""
        self._filed: dict[Flow, float] = {}
        """Each flow's deadline as last filed: a flow used since is filed again when it
        comes up; heap entries filed over are skipped."""
        self._heap: list[tuple[float, int, Flow]] = []
        self._seq = itertools.count()

    def file(self, sa: object, flow: Flow | None, interval: float, last_sent: float) -> None:
        """``sa`` keeps ``flow`` alive every ``interval`` seconds (None: no flow);
        ``last_sent`` is when it last sent anything there."""
        filed = self._flow_of.get(sa)
        if filed is not None and filed[0] == flow and filed[1] == interval:  # filed as it is
            if last_sent > (last := self._last)[flow]:
                last[flow] = last_sent
            return
        if filed is not None:
            del self._flow_of[sa]
            old, old_interval = filed
            intervals = self._intervals[old]
            intervals[old_interval] -= 1
            if not intervals[old_interval]:
                del intervals[old_interval]
            if not intervals:
                del self._intervals[old], self._last[old], self._filed[old]
        if flow is None:
            return
        intervals = self._intervals.get(flow)
        if intervals is None:
            self._intervals[flow] = intervals = Counter()
            self._last[flow] = last_sent
        elif last_sent > self._last[flow]:
            self._last[flow] = last_sent
        if not intervals or interval < min(intervals):
            self._schedule(flow, self._last[flow] + interval)
        intervals[interval] += 1
        self._flow_of[sa] = (flow, interval)

    def interval(self, flow: Flow) -> float:
        return min(self._intervals[flow])

    def carried(self, src: Address, dst: Address, at: float) -> None:
        """Something was sent on the flow at ``at`` (its deadline moves when it comes up)."""
        flow = (src, dst)
        if flow in self._last and at > self._last[flow]:
            self._last[flow] = at

    def last(self, src: Address, dst: Address) -> float | None:
        return self._last.get((src, dst))

    def deadline(self) -> float | None:
        heap, filed = self._heap, self._filed
        while heap and filed.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[Flow]:
        """The flows quiet for their interval: each gets a keepalive now, recorded as sent."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            at, _, flow = heapq.heappop(heap)
            if self._filed.get(flow) != at:
                continue  # filed again since, or its SAs went
            interval = self.interval(flow)
            if now < self._last[flow] + interval:
                self._schedule(flow, self._last[flow] + interval)
                continue
            self._last[flow] = now
            self._schedule(flow, now + interval)
            due.append(flow)
        return due

    def _schedule(self, flow: Flow, at: float) -> None:
        self._filed[flow] = at
        heapq.heappush(self._heap, (at, next(self._seq), flow))
