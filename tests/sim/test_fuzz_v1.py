"""The IKEv1 fuzz harness as a safety net (ikepulse.testing.fuzz_v1_harness): seeded
mutations and every named Libreswan/strongSwan IKEv1 CVE structure into a responder, both
before phase 1 and against an established ISAKMP SA with one IPsec SA.

hostile --x--> target (right, IKEv1 responder) <--> honest peer (left)
                 |
                 +-- per datagram: nothing escapes, every drop is counted, unauthenticated
                     input leaves the ISAKMP SA and its IPsec SAs alone, SAs stay bounded
                 +-- afterwards: Quick Mode and DPD round trips with the honest peer work
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from ikepulse.testing.fuzz_v1 import v1_regression_cases, v1_samples
from ikepulse.testing.fuzz_v1_harness import V1_FAMILIES, V1Fuzzer, failures
from ikepulse.wire.isakmp import FLAG_ENCRYPTED, encode_isakmp
from ikepulse.wire.isakmp_enums import ExchangeV1, PayloadV1

SEED = 7
INPUTS = 3000
KINDS = ("exception", "violation", "uncounted", "unbounded")


def run(established: bool) -> V1Fuzzer:
    fuzzer = V1Fuzzer(SEED, established=established)
    fuzzer.cases()
    fuzzer.mutations(INPUTS)
    return fuzzer


@pytest.fixture(scope="module")
def against_sa() -> V1Fuzzer:
    return run(established=True)


@pytest.fixture(scope="module")
def before_phase1() -> V1Fuzzer:
    return run(established=False)


@pytest.mark.parametrize("kind", KINDS)
def test_no_failure_against_an_established_sa(against_sa, kind):
    assert against_sa.report.per_kind[kind] == 0, failures(against_sa.report, [kind])


@pytest.mark.parametrize("kind", KINDS)
def test_no_failure_before_phase_1(before_phase1, kind):
    assert before_phase1.report.per_kind[kind] == 0, failures(before_phase1.report, [kind])


def test_every_family_is_fed_and_sealed_input_is_answered(against_sa):
    report = against_sa.report
    assert set(report.per_family) == set(V1_FAMILIES)
    assert report.per_family["authenticated"] >= 30
    assert report.answered > report.per_family["authenticated"] / 2


def test_the_sa_survives_the_run_and_still_works(against_sa):
    # one fresh SA at most: the authenticated Delete of CVE-2023-38712 ends the first
    assert against_sa.report.establishments <= 2
    assert against_sa.most_sas <= 3
    assert against_sa.still_works()
    assert against_sa.dpd_answered()


def test_a_peer_can_set_up_phase_1_after_the_flood(before_phase1):
    assert before_phase1.still_works()
    assert before_phase1.dpd_answered()


@pytest.mark.parametrize("name", [name for name, _ in v1_regression_cases()])
@pytest.mark.parametrize("established", [True, False], ids=["established", "phase1"])
def test_named_case(name, established):
    fuzzer = V1Fuzzer(SEED, established=established)
    fuzzer.cases(only=name)
    report = fuzzer.report
    assert report.per_family["cve"] + report.per_family["authenticated"] > 0
    assert sum(report.per_kind.values()) == 0, failures(report)
    assert fuzzer.still_works()


def test_forged_quick_modes_with_new_message_ids_leave_no_state():
    """Each forged Quick Mode has a message ID of its own; none may leave an IV behind."""
    fuzzer = V1Fuzzer(SEED)
    arena, rng = fuzzer.arena, random.Random(SEED)

    def forged() -> bytes:
        return encode_isakmp(arena.spi_i, arena.spi_r, ExchangeV1.QUICK, FLAG_ENCRYPTED,
                             rng.randrange(1, 1 << 32), encrypted=(PayloadV1.HASH,
                             rng.randbytes(64)))  # fmt: skip

    manager = arena.target.manager
    for _ in range(200):  # warm up caches and counters
        manager.receive_datagram(forged(), arena.peer.address, arena.target.address, 1.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(3000):
        manager.receive_datagram(forged(), arena.peer.address, arena.target.address, 1.0)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64_000
    assert manager.counters["dropped_undecryptable"] + manager.counters["dropped_bad_hash"] >= 3200
    assert fuzzer.still_works()


def test_a_flood_of_main_mode_1_is_bounded_and_forgotten():
    """Spoofed MM1s with cookies of their own from 600 addresses: half-open SAs up to the
    overall limit, the oldest evicted for new ones (counted); one address alone gets its
    per-source share and is then dropped over its cap and its rate (counted); once their
    time is up none is left, and the honest peer is still served."""
    fuzzer = V1Fuzzer(SEED, established=False)
    arena, manager = fuzzer.arena, fuzzer.arena.target.manager
    main1 = v1_samples()["main1"]
    limit = manager.gate.v1.policy.half_open_limit
    sources = [
        f"{net}.{n}" for net in ("192.0.2", "198.51.100", "203.0.113") for n in range(50, 250)
    ]
    for n in range(limit + 200):
        data = (n + 1).to_bytes(8, "big") + main1[8:]
        manager.receive_datagram(data, (sources[n % 600], 500), arena.target.address, 1000.0)
    assert len(manager.sas) == limit
    assert manager.counters["half_open_evicted"] == 200
    for n in range(100):
        data = (limit + 300 + n).to_bytes(8, "big") + main1[8:]
        manager.receive_datagram(data, ("192.0.2.30", 500), arena.target.address, 1000.0)
    assert manager.counters["half_open_evicted"] == 205
    rated = manager.counters["dropped_init_rate_limited"]
    assert manager.counters["dropped_half_open_per_source"] + rated == 95 and rated == 80
    for _ in range(10):
        arena.clock.now += 60.0
        manager.handle_timer(arena.clock.now)
        manager.datagrams_to_send(arena.clock.now)
    assert len(manager.sas) == 0
    assert fuzzer.still_works()
