"""The event stream behind ``ikepulse events`` and ``ikepulse top``: a ring of recent
events and one bounded queue per subscriber.

Publishing never waits: a subscriber that reads too slowly (or not at all) loses events,
which are counted and reported to it as one ``events-dropped`` record when it catches up."""

from __future__ import annotations

import asyncio
from collections import Counter, deque

RECENT = 100
"""Events kept for ``events --recent`` and the live view."""
QUEUE = 256
"""Events a subscriber may fall behind by before it loses them."""


class Subscriber:
    """One follower's queue, bounded; losses show up in order as ``events-dropped``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lost = 0
        """Events this subscriber lost in all."""
        self._buffer: deque[dict] = deque()
        self._dropped = 0
        self._closed = False
        self._ready = asyncio.Event()

    def offer(self, record: dict) -> bool:
        """Queue ``record``; False (and counted) when the subscriber is too far behind."""
        if len(self._buffer) >= self.size:
            self._dropped += 1
            self.lost += 1
            return False
        if self._dropped:
            self._buffer.append(_dropped(self._dropped))
            self._dropped = 0
        self._buffer.append(record)
        self._ready.set()
        return True

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def next(self) -> dict | None:
        """The next record; ``None`` once the feed is closed and all was read."""
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._dropped:
                lost, self._dropped = self._dropped, 0
                return _dropped(lost)
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()


def _dropped(count: int) -> dict:
    return {
        "kind": "events-dropped",
        "severity": "warning",
        "count": count,
        "text": f"{count} event(s) dropped: this subscriber read too slowly",
    }


class EventFeed:
    def __init__(
        self, counters: Counter[str] | None = None, recent: int = RECENT, queue: int = QUEUE
    ) -> None:
        self.recent: deque[dict] = deque(maxlen=recent)
        self.counters = Counter() if counters is None else counters
        self.queue_size = queue
        self._subscribers: set[Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, record: dict) -> None:
        self.recent.append(record)
        for subscriber in self._subscribers:
            if not subscriber.offer(record):
                self.counters["events_dropped"] += 1

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self.queue_size)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscription (daemon shutdown)."""
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
