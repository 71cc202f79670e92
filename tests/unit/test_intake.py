"""The runtime's IKE intake: IKE_AUTH and established SAs before new IKE_SA_INIT work, the
excess of which is dropped and counted."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from ikepulse.config.loader import DaemonSettings, Settings
from ikepulse.runtime.daemon import Daemon
from ikepulse.runtime.intake import ROUND_BATCH, Intake
from ikepulse.wire.enums import ExchangeType
from ikepulse.wire.message import FLAG_INITIATOR, Message, encode_message
from ikepulse.wire.payloads import NoncePayload

SRC, DST = ("192.0.2.9", 500), ("198.51.100.2", 500)


def init(n: int) -> bytes:
    msg = Message(
        n.to_bytes(8, "big"), bytes(8), ExchangeType.IKE_SA_INIT, FLAG_INITIATOR, 0,
        (NoncePayload(b"x" * 16),),
    )  # fmt: skip
    return encode_message(msg)


def auth(n: int) -> bytes:
    msg = Message(
        n.to_bytes(8, "big"), b"\x07" * 8, ExchangeType.IKE_AUTH, FLAG_INITIATOR, 1,
        (NoncePayload(b"x" * 16),),
    )  # fmt: skip
    return encode_message(msg)


def check(n: int) -> bytes:
    """A liveness check (an INFORMATIONAL request) of an established SA."""
    msg = Message(
        n.to_bytes(8, "big"), b"\x07" * 8, ExchangeType.INFORMATIONAL, FLAG_INITIATOR, 2,
        (NoncePayload(b"x" * 16),),
    )  # fmt: skip
    return encode_message(msg)


class Loop:
    """Stands for asyncio's call_soon and a clock that each processed datagram advances."""

    def __init__(self, cost: float = 0.001) -> None:
        self.pending: list = []
        self.now = 0.0
        self.cost = cost
        self.seen: list[bytes] = []
        self.rounds = 0

    def receive(self, data: bytes, src, dst) -> None:
        self.seen.append(data)
        self.now += self.cost

    def done(self) -> None:
        self.rounds += 1

    def run_once(self) -> None:
        pending = self.pending[:]
        del self.pending[:]  # the intake holds this list's append
        for call in pending:
            call()


def make(loop: Loop, counters: Counter, **kw) -> Intake:
    return Intake(
        loop.receive,
        loop.done,
        lambda callback, delay: loop.pending.append(callback),
        counters,
        clock=lambda: loop.now,
        **kw,
    )


def test_ike_auth_is_served_before_the_new_requests_read_with_it():
    loop, counters = Loop(), Counter()
    intake = make(loop, counters)
    batch = [init(1), init(2), auth(3), init(4), auth(5)]
    for data in batch:
        intake.add(data, SRC, DST)
    assert loop.seen == [] and len(loop.pending) == 1  # one round scheduled for the batch
    loop.run_once()
    assert loop.seen == [auth(3), auth(5), init(1), init(2), init(4)]
    assert loop.rounds == 1 and len(intake) == 0


def test_new_work_beyond_the_queue_is_dropped_oldest_first_and_counted():
    loop, counters = Loop(), Counter()
    intake = make(loop, counters, queue=3)
    for n in range(5):
        intake.add(init(n), SRC, DST)
    intake.add(auth(9), SRC, DST)
    loop.run_once()
    assert loop.seen == [auth(9), init(2), init(3), init(4)]
    assert counters["dropped_ike_sa_init_shed"] == 2


def test_new_work_has_a_budget_per_round_and_the_rest_waits_for_the_next():
    loop, counters = Loop(cost=0.01), Counter()
    intake = make(loop, counters, budget=0.025)
    for n in range(6):
        intake.add(init(n), SRC, DST)
    loop.run_once()
    assert loop.seen == [init(0), init(1), init(2)]
    intake.add(auth(7), SRC, DST)  # read before the next round
    loop.run_once()
    assert loop.seen[3:] == [auth(7), init(3), init(4), init(5)]
    assert loop.rounds == 2 and not loop.pending
    assert counters["dropped_ike_sa_init_shed"] == 0


def test_wake_runs_one_round_for_many_calls():
    loop, counters = Loop(), Counter()
    intake = make(loop, counters)
    for _ in range(100):
        intake.wake()  # a notice per ESP packet of a batch
    intake.add(auth(1), SRC, DST)
    assert len(loop.pending) == 1
    loop.run_once()
    assert loop.rounds == 1 and loop.seen == [auth(1)]


def test_established_traffic_goes_first_and_again_within_new_work():
    #   round: urgent, IKE_AUTH, IKE_SA_INIT x k, urgent, IKE_SA_INIT x k, urgent, ...
    loop, counters = Loop(cost=0.0005), Counter()
    intake = make(loop, counters, urgent=lambda: loop.seen.append(b"esp"))
    for n in range(20):
        intake.add(init(n), SRC, DST)
    intake.add(auth(99), SRC, DST)
    loop.run_once()
    assert loop.seen[:2] == [b"esp", auth(99)]
    runs = b"".join(b"." if x != b"esp" else b"|" for x in loop.seen[2:]).split(b"|")
    # 20 requests of 0.5 ms, a look at established traffic every 2 ms: 4 at a time
    assert [len(run) for run in runs] == [4, 4, 4, 4, 4]


def test_a_round_with_nothing_but_a_wake_still_serves_established_traffic():
    loop, counters = Loop(), Counter()
    looks = []
    intake = make(loop, counters, urgent=lambda: looks.append(loop.now))
    intake.wake()
    loop.run_once()
    assert looks == [0.0] and loop.rounds == 1


def test_ike_auth_read_within_a_round_goes_before_the_rest_of_the_new_work():
    loop, counters = Loop(cost=0.001), Counter()
    reads = iter([[], [auth(50)]])

    def urgent():  # the sockets read at the first look within the round hold an IKE_AUTH
        for data in next(reads, []):
            intake.add(data, SRC, DST)

    intake = make(loop, counters, urgent=urgent)
    for n in range(6):
        intake.add(init(n), SRC, DST)
    loop.run_once()
    assert loop.seen == [init(0), init(1), auth(50), init(2), init(3), init(4), init(5)]


def test_serve_established_takes_the_answers_now_and_leaves_new_work_for_its_round():
    """The daemon's timer serves what is queued for established SAs before any liveness
    verdict; new IKE_SA_INIT work waits for the round already scheduled."""
    loop, counters = Loop(), Counter()
    intake = make(loop, counters)
    for data in (init(1), auth(2), auth(3)):
        intake.add(data, SRC, DST)
    intake.serve_established()
    assert loop.seen == [auth(2), auth(3)] and len(intake) == 1
    loop.run_once()
    assert loop.seen == [auth(2), auth(3), init(1)] and len(intake) == 0


class Handle:
    def __init__(self, pending: list, entry: tuple) -> None:
        self.pending, self.entry = pending, entry

    def cancel(self) -> None:
        self.pending.remove(self.entry)


def test_thick_rounds_are_moderated_for_liveness_checks_not_for_sas_coming_up():
    """A quiet intake serves a datagram at once; once two rounds began less than the gap
    apart, liveness checks wait for the gap's end, unless ROUND_BATCH datagrams wait, or
    an SA coming up (IKE_SA_INIT, IKE_AUTH)."""
    delays, now = [], [0.0]

    def schedule(callback, delay):
        entry = (callback, delay)
        delays.append(entry)
        return Handle(delays, entry)

    intake = Intake(lambda *a: None, lambda: None, schedule, Counter(), gap=0.1,
                    clock=lambda: now[0])  # fmt: skip

    def run(at: float) -> None:
        now[0] = at
        ((callback, _),) = delays
        delays.clear()
        callback()

    intake.add(check(1), SRC, DST)
    assert delays[0][1] == 0.0  # quiet: at once
    run(1.0)
    intake.add(check(2), SRC, DST)
    assert delays[0][1] == 0.0  # one round 1 s ago: still quiet
    run(1.01)
    intake.add(check(3), SRC, DST)  # two rounds 10 ms apart: thick
    assert delays[0][1] == pytest.approx(0.1)
    for n in range(4, 4 + ROUND_BATCH - 1):
        intake.add(check(n), SRC, DST)
    assert [d for _, d in delays] == [0.0]  # a batch waits: hurried, once
    run(1.02)
    intake.add(check(99), SRC, DST)
    assert [d for _, d in delays] == [pytest.approx(0.1)]
    intake.add(auth(1), SRC, DST)  # an SA coming up never waits
    assert [d for _, d in delays] == [0.0]
    run(1.03)
    intake.add(check(100), SRC, DST)
    intake.add(init(1), SRC, DST)  # nor new-SA work
    assert [d for _, d in delays] == [0.0]


class DueManager:
    """Stands for the SA manager: a deadline always due, and what serving it saw."""

    sas: dict = {}

    def __init__(self) -> None:
        self.served: list[float] = []

    def receive_datagram(self, data, src, dst, now) -> None:
        pass

    def next_event(self) -> None:
        return None

    def datagrams_to_send(self, now: float) -> list:
        return []

    def get_timer(self) -> float:
        return 0.0

    def handle_timer(self, now: float) -> None:
        self.served.append(now)


def test_each_round_serves_the_deadlines_due_so_rounds_in_a_row_never_hold_them_off(tmp_path):
    """While rounds follow each other faster than the gap (a bring-up, a flood), the timer
    is armed past each; the rounds themselves must serve what is due."""
    settings = DaemonSettings(
        control_socket=f"{tmp_path}/control.sock", ike_port=500, natt_port=4500, listen=(),
        log_level="warning", state_dir=str(tmp_path), metrics_listen=None, save_keys=None,
        offload=False,
    )  # fmt: skip

    async def rounds() -> list[float]:
        daemon = Daemon(Settings(settings, (), path=f"{tmp_path}/none.toml"))
        daemon.manager = manager = DueManager()
        for n in range(3):
            daemon.intake.add(init(n), SRC, DST)
            daemon.intake.drain()
        return list(manager.served)  # before the loop runs what the rounds scheduled

    assert len(asyncio.run(rounds())) == 3
