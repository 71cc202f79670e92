"""IKEv1 fuzz harness: hostile datagrams into the responder of an in-memory ISAKMP SA.

The codec-level inputs of ``fuzz_v1`` (seeded mutations, named Libreswan/strongSwan IKEv1
CVE structures) are fed into the right peer's ``SaManager`` (the *target*, an IKEv1
responder), either before any phase 1 ran (``established=False``) or against an ISAKMP SA
the honest left peer set up with it, with one IPsec SA::

    hostile --x--> target (right, responder) <--> honest peer (left, initiator)
                     |
                     +-- per datagram: nothing escapes; a drop is counted (or the target
                         answered, emitted an event, or an SA came or went); unauthenticated
                         input leaves every ESTABLISHED SA and its IPsec SAs as they were;
                         the number of SAs stays below the half-open limit
                     +-- afterwards: a Quick Mode with the honest peer still installs

Against an established SA the cases' placeholder cookies become the SA's, and an E-flagged
case (its "ciphertext" is the plaintext chain) is sealed again with the honest peer's phase 1
keys and IV: a zero HASH(1) is a placeholder and is computed (the datagram is then
authenticated input), any other HASH(1) (wrong, empty, absent) is kept, and the datagram
stays unauthenticated. Only ``fingerprint`` and the honest SA's ``keying`` are touched
inside an SA; everything else uses ``SaManager`` and the wire codec.
"""

from __future__ import annotations

import random
import traceback
from collections import Counter
from collections.abc import Iterable

from ..config.build import liveness_policy, retransmit_policy
from ..core.events import ChildSaInstalled, PeerDead
from ..core.state import IkeState
from ..crypto.ikev1 import quick_hash1
from ..wire.buffer import DecodeError
from ..wire.isakmp import FLAG_ENCRYPTED, decode_chain, decode_isakmp, encode_chain, encode_isakmp
from ..wire.isakmp_enums import ExchangeV1
from ..wire.isakmp_payloads import HashV1Payload
from .fuzz import Failure, Hostile, Report, changes, fingerprint
from .fuzz_v1 import ECHO_RCOOKIE, ICOOKIE, RCOOKIE, v1_mutations, v1_regression_cases
from .loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle

V1_LIVENESS = liveness_policy(dpd_delay=20.0, dpd_timeout=30.0, nat_keepalive=0)
V1_OPTIONS = {
    "version": 1,
    "ike": "aes256-sha256-modp2048",
    "esp": "aes256-sha256",
    "liveness": V1_LIVENESS,
    "retransmit": retransmit_policy(tries=2),
}
"""Both peers: DPD on (so liveness runs during the fuzz), few retransmits (exchanges end)."""
V1_FAMILIES = ("mutated", "cve", "authenticated")
SEALED_EXCHANGES = (ExchangeV1.QUICK, ExchangeV1.INFORMATIONAL)
KEPT = 30


class V1Arena:
    """The honest ``peer`` (left) and the ``target``; ``established``: with an ISAKMP SA."""

    def __init__(self, seed: int, established: bool = True) -> None:
        self.rng = random.Random(seed)
        self.peer, self.target = make_peers(V1_OPTIONS, V1_OPTIONS, seed=seed)
        self.clock = Clock()
        self.echo = ECHO_RCOOKIE
        """The responder cookie the target last sent to ``ICOOKIE`` (for ECHO_RCOOKIE)."""
        self.pending: list = []
        """The target's datagrams not yet shown to the honest peer."""
        self.spi_i = self.spi_r = b""
        if established:
            self.establish()

    def establish(self) -> None:
        sa = self.peer.manager.initiate("site", LEFT, RIGHT, self.clock.now)
        run_until_idle(self.peer, self.target, self.clock, until=self.clock.now + 0.001)
        if sa.state is not IkeState.ESTABLISHED:
            raise RuntimeError(f"the ISAKMP SA did not come up: {self.peer.drain_events()}")
        self.spi_i, self.spi_r = sa.spi_i, sa.spi_r

    @property
    def established(self) -> bool:
        sa = self.target.manager.sas.get(self.spi_r)
        return sa is not None and sa.state is IkeState.ESTABLISHED

    def installed(self) -> int:
        """IPsec SAs the target installed so far."""
        return len(self.target.of(ChildSaInstalled))

    # --- shaping the inputs ---------------------------------------------------------------

    def adapt(self, data: bytes) -> bytes:
        """Placeholder cookies -> the target's (header, and SPIs naming the SA inside)."""
        if len(data) >= 16 and data[8:16] == ECHO_RCOOKIE:
            data = data[:8] + self.echo + data[16:]
        if not self.spi_r or data[:8] != ICOOKIE or data[8:16] not in (RCOOKIE, self.echo):
            return data
        return (self.spi_i + self.spi_r + data[16:]).replace(
            ICOOKIE + RCOOKIE, self.spi_i + self.spi_r
        )

    def reseal(self, data: bytes, family: str, label: str) -> Hostile | None:
        """An E-flagged Quick Mode or Informational case sealed with the honest SA's keys;
        None if ``data`` is no such thing (see the module docstring)."""
        honest = self.peer.manager.sas.get(self.spi_i)
        if honest is None or honest.state is not IkeState.ESTABLISHED or len(data) < 28:
            return None
        if not data[19] & FLAG_ENCRYPTED or data[:8] != ICOOKIE:
            return None
        try:
            msg = decode_isakmp(data)
            body = msg.encrypted.replace(ICOOKIE + RCOOKIE, self.spi_i + self.spi_r)
            payloads = list(decode_chain(msg.first_payload, body, padding=True).payloads)
        except (DecodeError, ValueError):
            return None
        if msg.exchange not in SEALED_EXCHANGES or not payloads:
            return None
        mid = msg.message_id
        if msg.exchange == ExchangeV1.QUICK:
            mid = self.rng.randrange(1, 1 << 32)  # a Quick Mode of its own
        keying = honest.keying
        placeholder = payloads[0].data if isinstance(payloads[0], HashV1Payload) else b"x"
        authentic = bool(placeholder) and not any(placeholder)
        if authentic:
            _, after = encode_chain(payloads[1:])
            payloads[0] = HashV1Payload(quick_hash1(keying.prf, keying.keys.skeyid_a, mid, after))
        first, plain = encode_chain(payloads)
        sealed = keying.seal(mid, plain)
        keying.forget(mid)
        out = encode_isakmp(self.spi_i, self.spi_r, msg.exchange, FLAG_ENCRYPTED, mid,
                            encrypted=(first, sealed))  # fmt: skip
        return Hostile(out, "authenticated" if authentic else family, label, authentic)

    def shape(self, data: bytes, family: str, label: str) -> Hostile:
        return self.reseal(data, family, label) or Hostile(self.adapt(data), family, label)


class V1Fuzzer:
    """Feeds hostile IKEv1 input into a ``V1Arena``'s target and checks the invariants."""

    def __init__(self, seed: int = 1, established: bool = True) -> None:
        self.seed = seed
        self.with_sa = established
        self.report = Report()
        self.most_sas = 0
        """The most SAs the target held at once (half-open ones included)."""
        self.arena = self._arena()

    def _arena(self) -> V1Arena:
        self.report.establishments += 1
        return V1Arena(self.seed * 1_000_003 + self.report.establishments, self.with_sa)

    # --- input ---------------------------------------------------------------------------

    def mutations(self, count: int, seal_share: float = 0.3) -> None:
        """``count`` mutated samples; a share of the E-flagged ones sealed with real keys."""
        rng = random.Random(self.seed)
        for data in v1_mutations(self.seed, count):
            self._refresh()
            if rng.random() < seal_share:
                hostile = self.arena.shape(data, "mutated", "mutation")
            else:
                hostile = Hostile(self.arena.adapt(data), "mutated", "mutation")
            self.feed(hostile)
            self.idle(rng.choice((0.0, 0.1, 0.5, 2.0, 8.0)))

    def cases(self, only: str | None = None) -> None:
        """Every named regression case (or the one called ``only``), each datagram in turn."""
        for name, datagrams in v1_regression_cases():
            if only not in (None, name):
                continue
            self._refresh()
            for data in datagrams:
                self.feed(self.arena.shape(data, "cve", name))
            self.idle(1.0)

    def _refresh(self) -> None:
        if self.with_sa and not self.arena.established:
            self.arena = self._arena()

    def feed(self, hostile: Hostile) -> None:
        """One datagram into the target; check what it changed."""
        arena, manager = self.arena, self.arena.target.manager
        self.report.inputs += 1
        self.report.per_family[hostile.family] += 1
        before, counters, count = fingerprint(manager), Counter(manager.counters), len(manager.sas)
        self._guard(hostile, manager.receive_datagram, hostile.data, hostile.src, RIGHT,
                    arena.clock.now)  # fmt: skip
        sent = self._guard(hostile, manager.datagrams_to_send, arena.clock.now) or []
        events = arena.target.events[:]
        self._guard(hostile, arena.target.drain_events)
        new_events = arena.target.events[len(events) :]
        arena.pending += sent
        for datagram in sent:
            if datagram.data[:8] == ICOOKIE and len(datagram.data) >= 16:
                arena.echo = datagram.data[8:16]
        self.report.answered += bool(hostile.authenticated and sent)
        if not hostile.authenticated:
            found = changes(before, fingerprint(manager))
            if found:
                self._fail("violation", hostile, "\n".join(found))
        if (
            manager.counters == counters
            and not sent
            and not new_events
            and len(manager.sas) == count
        ):
            self._fail("uncounted", hostile, "dropped without a counter")
        self.most_sas = max(self.most_sas, len(manager.sas))
        if len(manager.sas) > manager.gate.v1.policy.half_open_limit + 2:
            self._fail("unbounded", hostile, f"{len(manager.sas)} SAs")

    def idle(self, seconds: float) -> None:
        """Time passes; timers fire; the honest peer and the target talk."""
        arena = self.arena
        arena.clock.now += seconds
        for manager in (arena.target.manager, arena.peer.manager):
            deadline = self._guard(TIMER, manager.get_timer)
            if deadline is not None and deadline <= arena.clock.now:
                self._guard(TIMER, manager.handle_timer, arena.clock.now)
        pending, arena.pending = arena.pending, []
        for datagram in pending:
            if datagram.dst == LEFT:
                arena.peer.manager.receive_datagram(datagram.data, RIGHT, LEFT, arena.clock.now)
        self._guard(HONEST, run_until_idle, arena.peer, arena.target, arena.clock,
                    None, arena.clock.now)  # fmt: skip

    # --- afterwards --------------------------------------------------------------------------

    def still_works(self) -> bool:
        """A Quick Mode from the honest peer installs a new IPsec SA on the target (after
        a fresh phase 1 when the target had none)."""
        arena = self.arena
        # half-open SAs and retransmissions end; DPD runs meanwhile
        run_until_idle(arena.peer, arena.target, arena.clock, until=arena.clock.now + 120.0)
        if not arena.established:
            arena.establish()
        installed = arena.installed()
        arena.peer.manager.renew("site", arena.clock.now)
        run_until_idle(arena.peer, arena.target, arena.clock, until=arena.clock.now + 1.0)
        return arena.established and arena.installed() > installed

    def dpd_answered(self) -> bool:
        """Idle for twice ``dpd_delay``: an R-U-THERE went one way and was acknowledged,
        and nobody declared the other dead."""
        arena = self.arena
        managers = (arena.peer.manager, arena.target.manager)
        asked = [m.counters["dpd_requests_answered"] for m in managers]
        run_until_idle(arena.peer, arena.target, arena.clock,
                       until=arena.clock.now + 2 * V1_LIVENESS.dpd_delay)  # fmt: skip
        now = [m.counters["dpd_requests_answered"] for m in managers]
        return arena.established and now != asked and not arena.peer.of(PeerDead)

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
        if failure.signature not in report.signatures and len(report.failures) < KEPT:
            report.failures.append(failure)
        report.signatures[failure.signature] += 1


TIMER = Hostile(b"", "timer", "handle_timer")
HONEST = Hostile(b"", "honest", "the honest peer and the target")


def failures(report: Report, kinds: Iterable[str] | None = None) -> str:
    """The kept failures (of ``kinds``) for an assertion message."""
    return "\n".join(
        f"{f.kind} {f.family}/{f.label}: {f.data[:64].hex()}\n  {f.detail[-1500:]}"
        for f in report.failures
        if kinds is None or f.kind in kinds
    )
