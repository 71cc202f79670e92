"""Fuzz harness: hostile datagrams into the responder of an established in-memory IKE SA.

Two peers from ``loopback`` establish one IKE SA with one CHILD SA. The right one, the
*target*, then receives hostile datagrams, interleaved with its timers firing and with the
honest left peer sometimes answering the target's own requests. Input families
(``fuzz_inputs``, ``fuzz_cves``):

1. ``random``: random bytes, and 28-byte IKE header shapes with random fields;
2. ``mutated``: bit-flipped, truncated, extended and spliced real messages (strongSwan 5.9.8
   captures in tests/fixtures, and what the two peers exchanged);
3. ``structural``: messages built with the wire codec, with absurd lengths, unknown critical
   payloads, odd groups, SPIs, protocols and message IDs, forged SK/SKF payloads;
4. ``authenticated``: the same structures sealed in a valid SK payload with the left peer's
   keys and the message ID the target expects (or the one of its request in flight);
5. ``cve``: named replays of published strongSwan and Libreswan IKEv2 bugs (``fuzz_cves``,
   whose docstring also lists the CVEs skipped by design).

Invariants after every input: no exception escapes ``receive_datagram``, ``handle_timer``,
``datagrams_to_send`` or ``next_event``; unauthenticated input leaves every ESTABLISHED SA
exactly as it was (``fingerprint``) and establishes none; after authenticated input an
SA that is still ESTABLISHED answers a liveness check. Only ``fingerprint`` (observing) and
``seal`` (encoding with an SA's keys) touch an ``IkeSa``; the rest uses ``SaManager``'s
public surface and the wire codec.
"""

from __future__ import annotations

import random
import re
import traceback
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..config.build import liveness_policy, retransmit_policy
from ..core.datagram import Datagram
from ..core.events import ChildSaInstalled, IkeSaEstablished
from ..core.sa_manager import SaManager
from ..core.state import IkeState
from ..wire.buffer import DecodeError
from ..wire.enums import ExchangeType, PayloadType
from ..wire.message import FLAG_RESPONSE, decode_header
from ..wire.payloads import Payload
from .loopback import LEFT, RIGHT, RIGHT_NET, Clock, connection, make_peers, run_until_idle

FAMILIES = ("random", "mutated", "structural", "authenticated", "cve")
TARGET_LIVENESS = liveness_policy(dpd_delay=20.0, dpd_timeout=30.0, nat_keepalive=0)
PEER_OPTIONS = {"esp": "aes256gcm16-x25519", "retransmit": retransmit_policy(tries=2)}
"""PFS, so CREATE_CHILD_SA carries KE payloads; few retransmits, so exchanges end."""
ATTACKER = ("192.0.2.66", 500)
"""Where the named cases' attacker sends from (it runs IKE_SA_INIT, it knows no PSK)."""
REFRESH_EVERY = 400
"""Inputs after which a fresh pair of peers is established even if the SA survived."""
KEPT_FAILURES = 50
FRAME = re.compile(r'File ".*/ikepulse/(.+?)", line (\d+), in (\S+)')
"""A traceback line in ikepulse's own code."""


class Choices(Protocol):
    """Where the generators get their decisions: a seeded ``random.Random`` or atheris."""

    def below(self, n: int) -> int: ...

    def chance(self, p: float) -> bool: ...

    def bytes(self, n: int) -> bytes: ...


def pick(ch: Choices, items: Sequence):
    return items[ch.below(len(items))]


class RandomChoices:
    """Choices from a seeded ``random.Random``: deterministic for a seed."""

    def __init__(self, rng) -> None:
        self.rng = rng

    def below(self, n: int) -> int:
        return self.rng.randrange(n) if n > 0 else 0

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)


@dataclass(frozen=True, slots=True)
class Hostile:
    """One datagram for the target; ``authenticated`` if sealed with the honest peer's keys."""

    data: bytes
    family: str
    label: str
    authenticated: bool = False
    src: tuple[str, int] = LEFT


MakeInput = Callable[["Arena", Choices], Iterable[Hostile]]
"""Makes one input: yields its datagram(s), each fed before the next is made."""


@dataclass(slots=True)
class Failure:
    kind: str
    """``exception``, ``violation`` (unauthenticated input changed an SA) or ``unanswered``."""
    family: str
    label: str
    data: bytes
    detail: str

    @property
    def signature(self) -> str:
        """What tells one bug from another: for an exception its type and the innermost
        ikepulse line it passed; otherwise the input family, label and message kind."""
        if self.kind == "exception":
            frames = FRAME.findall(self.detail)
            where = "{}:{} in {}".format(*frames[-1]) if frames else "?"
            error = self.detail.strip().splitlines()[-1].split(":")[0]
            return f"exception {error} at {where}"
        try:
            msg = decode_header(self.data)[0]
            shape = f" {msg.exchange.name} {'response' if msg.is_response else 'request'}"
        except DecodeError:
            shape = ""
        return f"{self.kind} from {self.family}/{self.label}{shape}"


@dataclass
class Report:
    inputs: int = 0
    per_family: Counter = field(default_factory=Counter)
    """Datagrams fed per family (an input may be several datagrams)."""
    answered: int = 0
    """Authenticated datagrams the target answered: sealed input that reached its tasks."""
    per_kind: Counter = field(default_factory=Counter)
    """Failures per kind: ``exception``, ``violation``, ``unanswered``."""
    establishments: int = 0
    signatures: Counter = field(default_factory=Counter)
    """Failures per ``Failure.signature``."""
    failures: list[Failure] = field(default_factory=list)
    """The first failure of each signature (of the first ``Fuzzer.kept`` signatures)."""

    @property
    def exceptions(self) -> int:
        return self.per_kind["exception"]

    @property
    def violations(self) -> int:
        return self.per_kind["violation"]

    @property
    def unanswered(self) -> int:
        return self.per_kind["unanswered"]


def fingerprint(manager: SaManager) -> dict[bytes, tuple]:
    """What unauthenticated input must not change about each IKE SA of ``manager``."""
    return {
        spi: (
            sa.state,
            tuple((e.spi_in, e.child.spi_out, e.phase) for e in sa.children.entries()),
            sa.local,
            sa.remote,
            sa.liveness.state,
            sa.liveness.last_inbound,
            sa.renewal.phase,
        )
        for spi, sa in manager.sas.items()
    }


def seal(
    manager: SaManager,
    local_spi: bytes,
    exchange: ExchangeType,
    message_id: int,
    payloads: Iterable[Payload],
    response: bool = False,
) -> bytes:
    """``payloads`` in an SK payload protected with the keys of ``manager``'s IKE SA."""
    sa = manager.sas[local_spi]
    return sa.encode(exchange, message_id, response=response, payloads=list(payloads))


def half_open(arena: Arena, label: str) -> Generator[Hostile, None, tuple[SaManager, bytes]]:
    """IKE_SA_INIT with the target as an attacker with a wrong PSK (cookies answered);
    returns the attacker's manager and IKE SPI, keyed for the target's half-open SA."""
    attacker = SaManager(
        [connection("mallory.example", None, "192.0.2.0/26", RIGHT_NET, psk=b"a guessed secret")],
        random.Random(arena.rng.random()),
    )
    attacker.initiate("site", ATTACKER, RIGHT, arena.clock.now)
    (spi,) = attacker.sas
    for _ in range(4):
        seen = len(arena.outbox)
        for datagram in attacker.datagrams_to_send(arena.clock.now):
            if decode_header(datagram.data)[0].exchange == ExchangeType.IKE_AUTH:
                return attacker, spi
            yield Hostile(datagram.data, "cve", label, src=ATTACKER)
        for answer in arena.outbox[seen:]:
            if answer.dst == ATTACKER:
                attacker.receive_datagram(answer.data, answer.src, answer.dst, arena.clock.now)
    raise RuntimeError("the target never answered the attacker's IKE_SA_INIT")


def sealed_by(attacker: tuple[SaManager, bytes], label: str, exchange, payloads) -> Hostile:
    """Message ID 1 in the attacker's half-open SA (what IKE_AUTH would use)."""
    data = seal(*attacker, exchange, 1, payloads)
    return Hostile(data, "cve", label, src=ATTACKER)


def changes(before: dict[bytes, tuple], after: dict[bytes, tuple]) -> list[str]:
    """How ESTABLISHED SAs differ between two fingerprints (new ones included)."""
    found = []
    for spi, was in before.items():
        if was[0] is IkeState.ESTABLISHED and after.get(spi) != was:
            found.append(f"SA {spi.hex()}: {was} -> {after.get(spi)}")
    for spi, state in after.items():
        if state[0] is IkeState.ESTABLISHED and before.get(spi, (None,))[0] is not state[0]:
            found.append(f"SA {spi.hex()} became ESTABLISHED")
    return found


class Arena:
    """An established pair: the honest ``peer`` (left, initiator) and the ``target``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        """Fresh SPIs and keys for the named cases, so no two attacks collide."""
        left = {**PEER_OPTIONS}
        right = {**PEER_OPTIONS, "liveness": TARGET_LIVENESS, "rekey_time": 60.0}
        self.peer, self.target = make_peers(left, right, seed=seed)
        self.clock = Clock()
        self.peer.manager.initiate("site", LEFT, RIGHT, self.clock.now)
        run_until_idle(self.peer, self.target, self.clock, until=self.clock.now)
        (up,) = self.peer.of(IkeSaEstablished)
        self.spi_i, self.spi_r = up.spi_i, up.spi_r
        (child,) = self.peer.of(ChildSaInstalled)
        self.child_spis = (child.spi_in, child.spi_out)
        """(ours, theirs) as the honest peer sees them: REKEY_SA and Delete name ``ours``."""
        self.handshake = [d.data for d in self.peer.sent + self.target.sent]
        self.next_mid = max(decode_header(d.data)[0].message_id for d in self.peer.sent) + 1
        """The message ID of the honest peer's next request to the target."""
        self.inflight: tuple[ExchangeType, int] | None = None
        """Exchange and message ID of the target's latest request."""
        self.pending: list[Datagram] = []
        """The target's requests not yet shown to the honest peer."""
        self.outbox: list[Datagram] = []
        """Everything the target sent while the current input was fed."""

    @property
    def established(self) -> bool:
        return fingerprint(self.target.manager).get(self.spi_r, (None,))[0] is (
            IkeState.ESTABLISHED
        )

    def sealed(
        self, family: str, label: str, exchange: ExchangeType, payloads, *, response=False
    ) -> Hostile:
        """A request with the next message ID (or, ``response``, an answer to the target's
        request in flight), protected with the honest peer's keys."""
        mid = self.next_mid
        if response:
            mid = self.inflight[1] if self.inflight else self.next_mid
        data = seal(self.peer.manager, self.spi_i, exchange, mid, payloads, response)
        return Hostile(data, family, label, authenticated=True)

    def observe(self, datagrams: list[Datagram]) -> None:
        """Track message IDs from what the target sends: an answer with the expected ID
        means the honest peer's next request needs the next one."""
        self.outbox += datagrams
        for datagram in datagrams:
            if datagram.keepalive:
                continue
            header, first = decode_header(datagram.data)
            if (header.spi_i, header.spi_r) != (self.spi_i, self.spi_r):
                continue
            if header.flags & FLAG_RESPONSE:
                # only an encrypted answer consumed the ID (not an INVALID_IKE_SPI report)
                if header.message_id == self.next_mid and first is PayloadType.SK:
                    self.next_mid += 1
            else:
                self.inflight = (header.exchange, header.message_id)
                self.pending.append(datagram)


class Fuzzer:
    """Feeds hostile inputs into an ``Arena``'s target and checks the invariants."""

    def __init__(
        self, seed: int = 1, refresh_every: int = REFRESH_EVERY, kept: int = KEPT_FAILURES
    ) -> None:
        self.seed = seed
        self.refresh_every = refresh_every
        self.kept = kept
        """Of how many signatures the report keeps an example (all are counted)."""
        self.report = Report()
        self.arena = self._establish()
        self.fed = 0

    def _establish(self) -> Arena:
        self.report.establishments += 1
        return Arena(self.seed * 1_000_003 + self.report.establishments)

    # --- running ---------------------------------------------------------------------------

    def step(self, generate: MakeInput, ch: Choices) -> None:
        """One input: ``generate`` yields its datagram(s) against a live SA (each is fed
        before the next is made); then time passes and the honest peer may answer."""
        if not self.arena.established or self.fed >= self.refresh_every:
            self.arena, self.fed = self._establish(), 0
        self.fed += 1
        self.report.inputs += 1
        self.arena.outbox = []
        try:
            for hostile in generate(self.arena, ch):
                self.feed(hostile)
        except Exception as exc:  # a generator bug is a harness bug: surface it loudly
            raise RuntimeError(f"input generator {generate.__name__} failed") from exc
        self.arena.clock.now += pick(ch, (0.0, 0.2, 0.5, 1.0, 5.0, 40.0))
        self._fire_timer()
        if self.arena.pending and ch.chance(0.5):
            self._honest_answers()

    def feed(self, hostile: Hostile) -> None:
        """Deliver one datagram to the target (after its timers that are due) and check
        what it changed."""
        arena, manager = self.arena, self.arena.target.manager
        self.report.per_family[hostile.family] += 1
        self._fire_timer()
        before = fingerprint(manager)
        self._guard(hostile, manager.receive_datagram, hostile.data, hostile.src, RIGHT, now(arena))
        if not hostile.authenticated:
            found = changes(before, fingerprint(manager))
            if found:
                self._fail("violation", hostile, "\n".join(found))
        expected = arena.next_mid
        self._collect(hostile)
        if hostile.authenticated:
            self.report.answered += arena.next_mid > expected
            if arena.established:
                self._check_answers(hostile)

    def _check_answers(self, after: Hostile) -> None:
        """The SA survived authenticated input: it must answer an empty INFORMATIONAL."""
        arena = self.arena
        expected = arena.next_mid
        probe = arena.sealed("liveness", "check", ExchangeType.INFORMATIONAL, [])
        self._guard(
            after, arena.target.manager.receive_datagram, probe.data, LEFT, RIGHT, now(arena)
        )
        self._collect(after)
        if arena.next_mid == expected and arena.established:
            self._fail("unanswered", after, f"no answer to liveness check {expected}")

    def _collect(self, cause: Hostile) -> None:
        manager = self.arena.target.manager
        sent = self._guard(cause, manager.datagrams_to_send, now(self.arena))
        self.arena.observe(sent or [])
        while self._guard(cause, manager.next_event) is not None:
            pass

    def _fire_timer(self) -> None:
        manager = self.arena.target.manager
        deadline = self._guard(TIMER, manager.get_timer)
        if deadline is not None and deadline <= now(self.arena):
            self._guard(TIMER, manager.handle_timer, now(self.arena))
            self._collect(TIMER)

    def _honest_answers(self) -> None:
        """The honest peer answers the target's requests (authenticated traffic)."""
        arena, honest = self.arena, self.arena.peer.manager
        requests, arena.pending = arena.pending, []
        for datagram in requests:
            self._guard(HONEST, honest.receive_datagram, datagram.data, RIGHT, LEFT, now(arena))
        for answer in honest.datagrams_to_send(now(arena)):
            if not answer.keepalive:
                self._guard(
                    HONEST,
                    arena.target.manager.receive_datagram,
                    answer.data,
                    LEFT,
                    RIGHT,
                    now(arena),
                )
        while honest.next_event() is not None:
            pass
        self._collect(HONEST)

    # --- failures --------------------------------------------------------------------------

    def _guard(self, cause: Hostile, call, *args):
        try:
            return call(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - pyo3 panics are BaseExceptions too
            self._fail("exception", cause, traceback.format_exc())
            return None

    def _fail(self, kind: str, cause: Hostile, detail: str) -> None:
        report, failure = self.report, Failure(kind, cause.family, cause.label, cause.data, detail)
        report.per_kind[kind] += 1
        if failure.signature not in report.signatures and len(report.failures) < self.kept:
            report.failures.append(failure)
        report.signatures[failure.signature] += 1


def now(arena: Arena) -> float:
    return arena.clock.now


TIMER = Hostile(b"", "timer", "handle_timer")
HONEST = Hostile(b"", "honest", "answers from the honest peer")


def describe(failure: Failure) -> str:
    """A failure as a reader wants it: what, which input, the datagram, the detail."""
    header = ""
    try:
        msg = decode_header(failure.data)[0]
        header = f" ({msg.exchange.name} mid {msg.message_id} flags {msg.flags:#04x})"
    except (DecodeError, IndexError):
        pass
    return (
        f"{failure.kind} from {failure.family}/{failure.label}{header}\n"
        f"  datagram: {failure.data.hex()}\n  " + failure.detail.replace("\n", "\n  ")
    )
