"""Log output: JSON lines, and the rate limit on lines about unauthenticated input (an
injected clock; a flood of IKE_SA_INIT requests from in-memory initiators)."""

from __future__ import annotations

import io
import json
import logging
import random

import pytest

from ikepulse.core.admission import DEFAULT_POLICY
from ikepulse.core.sa_manager import SaManager
from ikepulse.runtime.logs import RATE_LIMIT, JsonFormatter, RateLimit
from ikepulse.testing.loopback import LEFT, LEFT_NET, RIGHT, RIGHT_NET, connection, make_peers


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def capture():
    """A logger whose lines go through a RateLimit on an injected clock into a list."""
    clock = FakeClock()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    limit = RateLimit(per_second=3, clock=clock)
    handler.addFilter(limit)
    logger = logging.getLogger("ikepulse.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, clock, limit, lambda: stream.getvalue().splitlines()
    logger.removeHandler(handler)


def test_flood_is_cut_to_n_lines_then_a_count(capture):
    logger, clock, limit, lines = capture
    for i in range(1000):
        logger.info("received IKE_SA_INIT %d", i, extra={RATE_LIMIT: "IKE_SA_INIT"})
        clock.now += 0.0005  # 2,000 a second for half a second
    assert lines() == [f"INFO received IKE_SA_INIT {i}" for i in range(3)]
    clock.now = 101.0
    limit.flush()
    assert lines()[3:] == ["INFO suppressed 997 similar messages (IKE_SA_INIT) in 1.0s"]
    logger.info("received IKE_SA_INIT again", extra={RATE_LIMIT: "IKE_SA_INIT"})
    assert lines()[4:] == ["INFO received IKE_SA_INIT again"]  # a new window


def test_the_count_comes_with_the_next_line_without_a_flush(capture):
    logger, clock, _, lines = capture
    for _ in range(5):
        logger.warning("half-open SA failed", extra={RATE_LIMIT: "failed"})
    clock.now += 1.5
    logger.info("unrelated")
    assert lines()[3:] == [
        "WARNING suppressed 2 similar messages (failed) in 1.5s",
        "INFO unrelated",
    ]


def test_kinds_and_unmarked_lines_are_independent(capture):
    logger, _, _, lines = capture
    for i in range(5):
        logger.info("a %d", i, extra={RATE_LIMIT: "a"})
        logger.info("b %d", i, extra={RATE_LIMIT: "b"})
        logger.info("established %d", i)
    assert sum(line.startswith("INFO a ") for line in lines()) == 3
    assert sum(line.startswith("INFO b ") for line in lines()) == 3
    assert sum(line.startswith("INFO established") for line in lines()) == 5


def test_nothing_suppressed_says_nothing(capture):
    logger, clock, limit, lines = capture
    logger.info("one", extra={RATE_LIMIT: "x"})
    clock.now += 5
    limit.flush()
    assert lines() == ["INFO one"]


def test_json_lines_carry_the_fixed_fields_and_extras():
    record = logging.LogRecord(
        "ikepulse.daemon", logging.WARNING, "f", 1, "peer %s dead", ("x",), None
    )
    record.connection = "site"
    record.suppressed = 4
    out = json.loads(JsonFormatter().format(record))
    assert out["level"] == "WARNING" and out["logger"] == "ikepulse.daemon"
    assert out["message"] == "peer x dead"
    assert (out["connection"], out["suppressed"]) == ("site", 4)
    assert out["time"].endswith("+00:00") and "T" in out["time"]
    assert "msg" not in out and "args" not in out


def test_ike_sa_init_flood_logs_a_bounded_number_of_lines():
    """Every IKE_SA_INIT received and answered is a marked line: 200 initiators cost
    per_second lines plus one count of the rest (a handler without the limit counts all)."""
    responder = make_peers()[1]
    clock = FakeClock()
    limited, everything = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(limited)
    handler.addFilter(RateLimit(per_second=5, clock=clock))
    logger = logging.getLogger("ikepulse.ike")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.addHandler(logging.StreamHandler(everything))
    try:
        for seed in range(200):
            left = connection("left.example", "right.example", LEFT_NET, RIGHT_NET)
            initiator = SaManager([left], random.Random(seed))
            initiator.initiate("site", LEFT, RIGHT, 0.0)
            for datagram in initiator.datagrams_to_send(0.0):
                responder.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, 0.0)
            responder.manager.datagrams_to_send(0.0)
        assert len(limited.getvalue().splitlines()) == 5
        clock.now += 1
        logger.info("next line")
    finally:
        logger.handlers.clear()
        logger.setLevel(level)
    every = everything.getvalue().splitlines()
    total = sum(" IKE_SA_INIT request" in x or " IKE_SA_INIT response" in x for x in every)
    # 200 initiators' requests; the responder's received/answered lines until one address
    # holds as many half-open SAs as it may (all come from LEFT)
    admitted = DEFAULT_POLICY.half_open_per_source
    assert sum("received IKE_SA_INIT" in line for line in every) == admitted
    assert total == 200 + 2 * admitted
    assert limited.getvalue().splitlines()[5:] == [
        f"suppressed {total - 5} similar messages (IKE_SA_INIT) in 1.0s",
        "next line",
    ]
