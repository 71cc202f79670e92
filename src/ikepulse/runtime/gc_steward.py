"""When the daemon's long-lived objects get garbage-collected: by us, at quiet moments.

CPython collects its oldest generation once the objects that survived into it grew by a
quarter; each such full collection walks every tracked object. At 10,000 tunnels that is
about 1.4 million (SAs, tasks, keys, selectors) and 1-1.3 s with the event loop stopped,
typically triggered by whatever allocates a lot at once, such as the first ``status``
(measured with ``gc.callbacks``: 0.4 s of a 0.76 s status at 3,000 tunnels). The usual
remedy for long-running servers is ``gc.freeze()``: objects that live as long as the
process are moved out of the collector's sight, and collections only walk what is newer.

``observe`` (cheap: two comparisons) is called after each batch of work:

- after start-up and whenever the SA count grew by a quarter since the last freeze (a large
  bring-up), collect what is not frozen (cost proportional to the growth) and freeze it;
- once every ``FULL_EVERY`` seconds, unfreeze, collect everything and freeze again, so that
  frozen objects that have since become cyclic garbage (deleted SAs) are reclaimed: one
  deliberate pause an hour instead of pauses whenever the heap grew.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

GROWTH = 0.25
"""Freeze again once the SA count grew by this fraction of the count at the last freeze."""
MIN_GROWTH = 256
"""... and by at least this many SAs (small daemons freeze rarely)."""
FULL_EVERY = 3600.0
"""Seconds between full collections of the frozen objects too."""


@contextmanager
def paused() -> Iterator[None]:
    """No collection while a large answer is built (a status: a million dicts and lists that
    cannot be garbage, on which the collector would otherwise run a few times over)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class GcSteward:
    def __init__(self, now: float, counters: Counter[str]) -> None:
        self.frozen_at = 0
        """SA count at the last freeze (or the lowest since)."""
        self.next_full = now + FULL_EVERY
        self.counters = counters

    def settle(self) -> None:
        """Collect what is not frozen yet and freeze what survives (start-up, bring-ups)."""
        gc.collect()
        gc.freeze()
        self.counters["gc_freezes"] += 1

    def observe(self, population: int, now: float) -> None:
        """``population``: how many IKE SAs the daemon holds now."""
        if population >= self.frozen_at + max(MIN_GROWTH, GROWTH * self.frozen_at):
            self.frozen_at = population
            self.settle()
        elif now >= self.next_full:
            self.next_full = now + FULL_EVERY
            self.frozen_at = population
            gc.unfreeze()
            self.counters["gc_full_collections"] += 1
            self.settle()
        elif population < self.frozen_at:
            self.frozen_at = population  # SAs went: the next quarter of growth counts from here
