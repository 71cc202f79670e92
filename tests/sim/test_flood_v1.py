"""A legitimate IKEv1 peer gets in while spoofed Main and Aggressive Mode first messages pour
in: IKEv1 has no cookies, so the per-source rate, the per-source half-open cap and the
overall cap with eviction (``core.gate``) do the work, before any DH (RFC 2409 §5.4)."""

from __future__ import annotations

from collections import Counter

import pytest

from ikepulse.core.admission import DEFAULT_POLICY
from ikepulse.core.gate import HALF_OPEN_V1
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, Peer, make_peers

V1 = {"version": 1, "ike": "aes128-sha256-ecp256", "esp": "aes128gcm16"}
SOURCES = [(f"192.0.2.{n}", 500) for n in range(1, 101)]


def first_message(aggressive: bool) -> bytes:
    """A real MM1 or AM1 (the AM1 carries KE, Ni and IDii), whose cookie the flood varies."""
    a, _ = make_peers({**V1, "aggressive": aggressive}, seed=99)
    a.manager.initiate("site", LEFT, RIGHT, 0.0)
    return a.manager.datagrams_to_send(0.0)[0].data


def step(a: Peer, b: Peer, clock: Clock) -> Counter[str]:
    """One round trip of the legitimate pair plus b's timers; b's answers to the flood go
    nowhere (counted per destination)."""
    answered: Counter[str] = Counter()
    for datagram in a.manager.datagrams_to_send(clock.now):
        b.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, clock.now)
    b.manager.handle_timer(clock.now)
    a.manager.handle_timer(clock.now)
    for datagram in b.manager.datagrams_to_send(clock.now):
        if datagram.dst[0] == LEFT[0]:
            a.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, clock.now)
        else:
            answered[datagram.dst[0]] += 1
    return answered


@pytest.mark.parametrize("aggressive", [False, True])
def test_a_legitimate_ikev1_peer_establishes_through_spoofed_mm1_and_am1(aggressive):
    #   100 spoofed sources, 4,000 MM1 and AM1 (alternating) within t = 1000 .. 1001
    #   legit  HDR, SA -->  <-- HDR, SA  ...  (Main Mode; or AM1 --> <-- AM2, AM3 -->)
    #   legit  Quick Mode --> <-- -->
    templates = [first_message(False), first_message(True)]
    a, b = make_peers({**V1, "aggressive": aggressive}, {**V1, "aggressive": True})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    answered: Counter[str] = Counter()
    peak = 0
    for n in range(4000):
        clock.now = 1000.0 + n / 4000
        data = (n + 1).to_bytes(8, "big") + templates[n % 2][8:]
        b.manager.receive_datagram(data, SOURCES[n % len(SOURCES)], RIGHT, clock.now)
        if n % 200 == 0:
            answered += step(a, b, clock)
        peak = max(peak, len(b.manager.sas))
    answered += step(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    assert sa.children.entries()
    counters = b.manager.counters
    # every source got its share of half-open SAs, then was dropped before any DH work
    assert set(answered.values()) == {DEFAULT_POLICY.half_open_per_source}
    assert (
        counters["dropped_half_open_per_source"]
        == 4000 - 100 * 5 - counters["dropped_init_rate_limited"]
    )
    assert counters["dropped_init_rate_limited"] > 0
    assert peak <= 100 * DEFAULT_POLICY.half_open_per_source + 1 < HALF_OPEN_V1


@pytest.mark.parametrize("configured", [True, False])
def test_a_configured_ikev1_peer_is_exempt_from_the_per_source_limits(configured):
    """A gateway listed in ``remote_addrs`` may set up more SAs at once than a stranger."""
    mm1 = first_message(False)
    remote_addrs = (LEFT[0],) if configured else ()
    _, b = make_peers(V1, {**V1, "remote_addrs": remote_addrs})
    for n in range(40):
        data = (n + 1).to_bytes(8, "big") + mm1[8:]
        b.manager.receive_datagram(data, LEFT, RIGHT, 1000.0)
    answers = b.manager.datagrams_to_send(1000.0)
    counters = b.manager.counters
    if configured:
        assert len(answers) == 40 and not +counters  # no drop, no eviction
    else:
        assert len(answers) == DEFAULT_POLICY.half_open_per_source
        assert counters["dropped_half_open_per_source"] == DEFAULT_POLICY.init_burst - 5
        assert counters["dropped_init_rate_limited"] == 40 - DEFAULT_POLICY.init_burst


def test_first_messages_over_the_rate_are_dropped_before_they_are_decoded():
    """A source's token bucket is asked from the header alone: once it is empty even a
    message that would not decode is counted as over the rate, not as malformed."""
    mm1 = first_message(False)
    _, b = make_peers(V1, V1)
    broken = mm1[:28] + b"\xff" * 40  # an ISAKMP header with its payload chain cut up
    for n in range(30):
        data = (n + 1).to_bytes(8, "big") + broken[8:]
        b.manager.receive_datagram(data, ("192.0.2.5", 500), RIGHT, 1000.0)
    counters = b.manager.counters
    assert counters["dropped_malformed"] == DEFAULT_POLICY.init_burst
    assert counters["dropped_init_rate_limited"] == 30 - DEFAULT_POLICY.init_burst
    assert b.manager.sas == {}


def test_a_full_table_lets_a_peer_in_without_the_flood_churning_it():
    #   200 sources x 5 half-open SAs fill the IKEv1 table (1,000); a legitimate MM1 evicts
    #   the oldest, whose source still counts it: the flood goes on without evicting more
    mm1, am1 = first_message(False), first_message(True)
    a, b = make_peers(V1, {**V1, "aggressive": True})
    sources = [(f"192.0.2.{n}", 500) for n in range(1, 201)]
    clock = Clock()

    def flood(start: int, count: int) -> None:
        for n in range(start, start + count):
            clock.now = 1000.0 + n / 4000
            data = (n + 1).to_bytes(8, "big") + (mm1, am1)[n % 2][8:]
            b.manager.receive_datagram(data, sources[n % 200], RIGHT, clock.now)

    flood(0, 4000)
    assert len(b.manager.sas) == HALF_OPEN_V1
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    step(a, b, clock)
    flood(4000, 4000)  # the evicted SA's source now has 4 and tokens again
    for _ in range(4):
        step(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    assert b.manager.counters["half_open_evicted"] == 1
