"""Restarts by connection name, their attempt times indexed (core/restarts.py)."""

from __future__ import annotations

from ikepulse.config.build import liveness_policy
from ikepulse.core.restarts import Restarts

LOCAL, REMOTE = ("198.51.100.1", 500), ("198.51.100.2", 500)
POLICY = liveness_policy(dpd_delay=30.0)


def names(due) -> list[str]:
    return [name for name, _ in due]


def test_due_in_the_order_restarts_began_whatever_their_times():
    restarts = Restarts()
    for name in ("a", "b", "c"):
        restarts.begin(name, LOCAL, REMOTE, now=10.0)
    assert names(restarts.due(10.0)) == ["a", "b", "c"]
    restarts.attempt_failed("c", POLICY, lambda: 0.0, now=11.0)
    restarts.attempt_failed("a", POLICY, lambda: 0.0, now=12.0)
    assert restarts.deadline() == 11.0 + POLICY.restart_base
    assert restarts.due(11.0) == []
    assert names(restarts.due(100.0)) == ["a", "c"]
    assert restarts.deadline() is None  # both under way, b too


def test_an_ended_or_begun_again_restart_keeps_no_old_time():
    restarts = Restarts()
    restarts.begin("a", LOCAL, REMOTE, now=5.0)
    restarts.begin("b", LOCAL, REMOTE, now=6.0)
    restarts.end("a")
    assert restarts.get("a") is None
    assert restarts.deadline() == 6.0
    restarts.due(6.0)
    restarts.attempt_failed("b", POLICY, lambda: 0.0, now=7.0)
    restarts.begin("b", LOCAL, REMOTE, now=8.0)  # the peer died again: at once, attempt 0
    assert restarts.deadline() == 8.0
    assert [(n, r.attempt) for n, r in restarts.due(8.0)] == [("b", 0)]
    assert restarts.due(1000.0) == []


def test_a_name_begun_again_keeps_its_place_in_the_order():
    restarts = Restarts()
    restarts.begin("a", LOCAL, REMOTE, now=1.0)
    restarts.begin("b", LOCAL, REMOTE, now=1.0)
    restarts.begin("a", LOCAL, REMOTE, now=2.0)
    assert names(restarts.due(2.0)) == ["a", "b"]
