"""The daemon's garbage-collection steward: long-lived objects are frozen after start-up
and large bring-ups, and a periodic full pass still reclaims frozen cycles."""

from __future__ import annotations

import gc
import weakref
from collections import Counter

import pytest

from ikepulse.runtime.gc_steward import FULL_EVERY, MIN_GROWTH, GcSteward, paused


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_growth_by_a_quarter_freezes_and_small_growth_does_not():
    counters: Counter[str] = Counter()
    steward = GcSteward(0.0, counters)
    steward.observe(MIN_GROWTH - 1, 1.0)
    assert gc.get_freeze_count() == 0 and counters["gc_freezes"] == 0
    steward.observe(4000, 2.0)
    assert gc.get_freeze_count() > 0 and counters["gc_freezes"] == 1
    steward.observe(4999, 3.0)  # less than a quarter more
    assert counters["gc_freezes"] == 1
    steward.observe(5000, 4.0)
    assert counters["gc_freezes"] == 2


def test_frozen_cycles_are_reclaimed_by_the_periodic_full_collection():
    counters: Counter[str] = Counter()
    steward = GcSteward(0.0, counters)
    node = Node()
    gone = weakref.ref(node)
    steward.settle()  # node is frozen with everything else
    del node
    gc.collect()
    assert gone() is not None  # frozen: out of the collector's sight
    steward.observe(0, FULL_EVERY - 1)
    assert gone() is not None
    steward.observe(0, FULL_EVERY)
    assert gone() is None and counters["gc_full_collections"] == 1
    assert gc.get_freeze_count() > 0  # and what lives is frozen again


def test_a_shrunk_population_counts_growth_from_its_low():
    counters: Counter[str] = Counter()
    steward = GcSteward(0.0, counters)
    steward.observe(4000, 1.0)
    steward.observe(1000, 2.0)
    steward.observe(1300, 3.0)  # a quarter (and MIN_GROWTH) above the low of 1,000
    assert counters["gc_freezes"] == 2


def test_paused_stops_collections_and_restores_the_previous_setting():
    runs: list[str] = []

    def seen(phase, info):
        if phase == "start":
            runs.append(phase)

    gc.callbacks.append(seen)
    try:
        with paused():
            keep = [[] for _ in range(50_000)]  # far beyond the young generation's threshold
            assert not gc.isenabled() and runs == []
        assert gc.isenabled() and len(keep) == 50_000
        gc.disable()
        with paused():
            pass
        assert not gc.isenabled()  # left as it found it
    finally:
        gc.enable()
        gc.callbacks.remove(seen)
