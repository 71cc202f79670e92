"""A legitimate initiator gets in while spoofed IKE_SA_INIT requests pour in (RFC 7296
§2.6, RFC 8019): cookies, per-source limits, a half-open cap with eviction, half-open SAs
that expire, memory and log lines that stay bounded."""

from __future__ import annotations

import logging
import random
import tracemalloc
from dataclasses import replace

from ikepulse.core.admission import DEFAULT_POLICY
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.runtime.logs import RateLimit
from ikepulse.testing.loopback import (
    LEFT,
    LEFT_NET,
    RIGHT,
    RIGHT_NET,
    Clock,
    Peer,
    connection,
    make_peers,
    run_until_idle,
)
from ikepulse.wire.enums import ExchangeType
from ikepulse.wire.message import decode_message, encode_message

SOURCES = [(f"192.0.2.{n}", 500) for n in range(1, 201)]


def template() -> bytes:
    """A real IKE_SA_INIT request, whose SPI the flood varies."""
    a, _ = make_peers(seed=99)
    a.manager.initiate("site", LEFT, RIGHT, 0.0)
    return a.manager.datagrams_to_send(0.0)[0].data


def spoofed(n: int, base: bytes) -> bytes:
    return (n + 1).to_bytes(8, "big") + base[8:]


def step(a: Peer, b: Peer, clock: Clock) -> None:
    """One round trip of the legitimate pair; b's answers to the flood go nowhere."""
    for datagram in a.manager.datagrams_to_send(clock.now):
        b.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, clock.now)
    for datagram in b.manager.datagrams_to_send(clock.now):
        if datagram.dst[0] == LEFT[0]:
            a.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, clock.now)


class Lines(logging.Handler):
    def __init__(self, clock: Clock) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RateLimit(clock=lambda: clock.now))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_legitimate_peer_establishes_through_10000_spoofed_requests_in_one_second():
    #   200 spoofed sources, 10,000 IKE_SA_INIT within t = 1000 .. 1001
    #   legit  HDR, SAi1, KEi, Ni -->          <-- N(COOKIE)
    #   legit  N(COOKIE), SAi1, KEi, Ni -->    <-- SAr1, KEr, Nr
    #   legit  SK{IDi, AUTH, SA, TSi, TSr} --> <-- SK{IDr, AUTH, SA, TSi, TSr}
    base = template()
    a, b = make_peers()
    clock = Clock()
    lines = Lines(clock)
    logger = logging.getLogger("ikepulse")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    tracemalloc.start()
    try:
        sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
        before = tracemalloc.get_traced_memory()[0]
        for n in range(10_000):
            clock.now = 1000.0 + n / 10_000
            b.manager.receive_datagram(spoofed(n, base), SOURCES[n % 200], RIGHT, clock.now)
            if n % 500 == 0:
                step(a, b, clock)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        logger.removeHandler(lines)
        logger.setLevel(level)
    assert sa.state is IkeState.ESTABLISHED
    counters = b.manager.counters
    assert len(b.manager.sas) <= DEFAULT_POLICY.cookie_threshold + 1
    assert counters["cookies_sent"] >= 1000
    assert counters["dropped_init_rate_limited"] >= 4000
    assert grown < 2_000_000
    assert len(lines.records) < 100


def test_an_attacker_who_answers_cookies_is_held_by_the_caps():
    #   cookies needed from the first half-open SA; 40 sources echo them, one of them as
    #   often as all others: 3 half-open SAs each at most, 30 in all (the oldest evicted),
    #   the rest over their rate
    policy = replace(DEFAULT_POLICY, cookie_threshold=0, half_open_limit=30, half_open_per_source=3)
    right = connection("right.example", "left.example", RIGHT_NET, LEFT_NET)
    a, _ = make_peers()
    b = Peer(SaManager([right], random.Random(2), admission=policy), RIGHT)
    clock = Clock()
    base = decode_message(template())
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    peak = 0
    for n in range(2000):
        clock.now = 1000.0 + n / 2000
        src = SOURCES[0] if n % 2 else SOURCES[n % 40]
        first = replace(base, spi_i=(n + 1).to_bytes(8, "big"))
        b.manager.receive_datagram(encode_message(first), src, RIGHT, clock.now)
        for answer in [d for d in b.manager.datagrams_to_send(clock.now) if d.dst == src]:
            cookie = decode_message(answer.data).payloads[0]
            again = replace(first, payloads=(cookie, *first.payloads))
            b.manager.receive_datagram(encode_message(again), src, RIGHT, clock.now)
        peak = max(peak, len(b.manager.sas))
        if n % 10 == 0:
            step(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    counters = b.manager.counters
    assert peak <= policy.half_open_limit + 1
    assert counters["half_open_evicted"] > 0
    assert counters["dropped_half_open_per_source"] > 0
    assert counters["dropped_init_rate_limited"] > 0


def test_a_half_open_sa_with_no_ike_auth_expires_quietly():
    #   HDR, SAi1, KEi, Ni -->
    #                 <-- HDR, SAr1, KEr, Nr      (then nothing: the initiator is gone)
    a, b = make_peers()
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    (init,) = a.manager.datagrams_to_send(clock.now)
    b.manager.receive_datagram(init.data, init.src, init.dst, clock.now)
    (answer,) = b.manager.datagrams_to_send(clock.now)
    assert decode_message(answer.data).exchange == ExchangeType.IKE_SA_INIT
    assert len(b.manager.sas) == 1
    assert b.manager.get_timer() == clock.now + DEFAULT_POLICY.half_open_timeout
    clock.now += DEFAULT_POLICY.half_open_timeout - 0.1
    b.manager.handle_timer(clock.now)
    assert len(b.manager.sas) == 1
    clock.now += 0.1
    b.manager.handle_timer(clock.now)
    assert b.manager.sas == {}
    assert b.manager.counters["half_open_expired"] == 1
    assert b.drain_events() == [] and b.manager.datagrams_to_send(clock.now) == []
    assert b.manager.get_timer() is None


def test_a_half_open_sa_that_authenticates_in_time_is_not_expired():
    a, b = make_peers()
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    clock.now += DEFAULT_POLICY.half_open_timeout * 2
    b.manager.handle_timer(clock.now)
    assert len(b.manager.sas) == 1 and b.manager.counters["half_open_expired"] == 0
