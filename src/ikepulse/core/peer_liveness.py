"""The liveness of one IKE SA's peer, in both directions: its state, its inputs and what is
due (RFC 7296 §2.4, RFC 3948 §2.3, DESIGN.md §4).

Inbound traffic proves the peer alive; only an answer to one of our requests proves that
our packets reach it. So the part keeps two clocks: the peer's last sign of life, and the
first packet we sent after the last such answer. Either running past ``dpd_delay`` calls
for a check, past ``dpd_delay + dpd_timeout`` for the verdict. Two kinds of evidence call
for a check at once: ESP going out with nothing coming back for a few RTTs (a NAT that
remapped us, a path that broke), and the peer retransmitting a request we answered (our
answers are being lost).

Like aioquic's loss recovery, the part owns its timestamps and answers two questions:
``deadline()`` (when something may next be due) and ``due(now)`` (what is due now). The IKE
SA acts on the answer and reports back (``probe_started``, ``declared_dead``). NAT-T
keepalives are per UDP flow, not per SA (``core.nat_mappings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .liveness import (
    MIN_RTO,
    LivenessPolicy,
    RttEstimator,
    dead_at,
    earliest,
    on_demand_wait,
    probe_waits,
)
from .state import IdentityEnum, checked


class Liveness(IdentityEnum):
    """Liveness state of an IKE SA, shown in status. A connection re-established after its
    peer died is *restarting*: that is the SA manager's state, not an IKE SA's."""

    ALIVE = "alive"
    """Both directions proven recently enough, or no check due yet."""
    SUSPECT = "suspect"
    """A liveness check is in flight because one direction is in doubt: our packets went
    unanswered, or ESP went out and nothing came back, or the peer retransmits."""
    PROBING = "probing"
    """A routine liveness check (empty INFORMATIONAL, §2.4) of an idle peer is in flight."""
    DEAD = "dead"
    """The detection budget ran out, or the peer evidently lost its state."""


TRANSITIONS: dict[Liveness, frozenset[Liveness]] = {
    Liveness.ALIVE: frozenset({Liveness.SUSPECT, Liveness.PROBING, Liveness.DEAD}),
    Liveness.SUSPECT: frozenset({Liveness.ALIVE, Liveness.DEAD}),
    Liveness.PROBING: frozenset({Liveness.ALIVE, Liveness.DEAD}),
    Liveness.DEAD: frozenset(),
}


class Cause(Enum):
    """Why a liveness check went out (shown in status while it is in flight)."""

    IDLE = "no sign of life from the peer for dpd_delay"
    UNPROVEN = "nothing we sent has been answered for dpd_delay"
    NO_REPLY = "ESP went out and nothing came back"
    PEER_RETRANSMITS = "the peer retransmitted a request we answered"

    @property
    def state(self) -> Liveness:
        return Liveness.PROBING if self is Cause.IDLE else Liveness.SUSPECT


class Direction(Enum):
    """Which way the path failed, as far as one side can tell."""

    OUTBOUND = "outbound"
    """The peer's packets still arrive; ours go unanswered."""
    SILENT = "silent"
    """Nothing arrives from the peer (it is gone, or the path is broken both ways or
    towards us)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """Send a liveness check now; its retransmissions must fit in ``budget`` seconds."""

    budget: float
    cause: Cause


@dataclass(frozen=True, slots=True)
class Dead:
    """The detection budget ran out."""

    reason: str


class PeerLiveness:
    """Signs of life and answers in, checks out, the verdict at the budget's end."""

    def __init__(self, now: float) -> None:
        self.state = Liveness.ALIVE
        self.cause: Cause | None = None
        """Why the check in flight went out."""
        self.check_started: float | None = None
        self.last_inbound = now
        """The last sign of life: an authenticated IKE message or an inbound ESP packet."""
        self.last_sent = now
        """The last IKE datagram or ESP packet we sent."""
        self.last_answer = now
        """The last answer to one of our requests: our direction proven."""
        self.unanswered_since: float | None = None
        """The first packet we sent after ``last_answer``."""
        self.esp_silent_since: float | None = None
        """The first ESP packet we sent after ``last_inbound``."""
        self.peer_retransmitted = False
        self.on_demand_checks = 0
        """On-demand checks in a row; each doubles the next wait (one-way traffic)."""
        self.last_on_demand: float | None = None
        self.rtt = RttEstimator()
        self.probes_sent = 0
        self.probes_unanswered = 0
        self.head_start = 0.0
        """The fraction of ``dpd_delay`` the next check comes early, so that SAs set up
        together do not probe together, nor the two ends of one SA (drawn per check from
        the injected RNG)."""

    def _to(self, new: Liveness) -> None:
        self.state = checked(TRANSITIONS, self.state, new, "liveness")

    # --- inputs ------------------------------------------------------------------------

    def sign_of_life(self, now: float) -> None:
        """An authenticated IKE message or an inbound ESP packet: the peer is alive (which
        says nothing about our direction: a check in flight goes on)."""
        self.last_inbound = max(self.last_inbound, now)
        if self.esp_silent_since is not None and self.esp_silent_since <= now:
            self.esp_silent_since = None

    def proven(self, now: float, sent_until: float, check_answered: bool = False) -> None:
        """Our direction works: an answer to our request last transmitted at
        ``sent_until``, or a new request from the peer, which it sends only once it has our
        answer to the previous one (§2.3, a window of one). What went out later is not
        proven yet. Only the answer to the check itself (``check_answered``) ends it."""
        self.sign_of_life(now)
        self.last_answer = now
        if self.unanswered_since is not None and self.unanswered_since <= sent_until:
            self.unanswered_since = sent_until if self.last_sent > sent_until else None
        if check_answered and self.state in (Liveness.PROBING, Liveness.SUSPECT):
            self.probes_unanswered = 0
            self.cause = self.check_started = None
            self._to(Liveness.ALIVE)

    def retransmission_seen(self, now: float) -> None:
        """The peer sent again a request we already answered: it is alive, and our answer
        may be lost. (A replayed copy cannot hide a broken path: our answers to it stay
        unanswered, and that clock decides as well.)"""
        self.sign_of_life(now)
        self.peer_retransmitted = True

    def esp_activity(
        self, last_inbound: float | None, last_outbound: float | None, silent_since: float | None
    ) -> None:
        """One CHILD SA's traffic times from the data plane (``silent_since``: its first
        outbound packet after its last inbound one)."""
        if last_inbound is not None and last_inbound > self.last_inbound:
            self.sign_of_life(last_inbound)
        if last_outbound is None:
            return
        self.sent(last_outbound)
        if silent_since is not None:
            self.sent(silent_since)
        if last_outbound > self.last_inbound:
            first = silent_since if silent_since and silent_since > self.last_inbound else None
            first = last_outbound if first is None else first
            if self.esp_silent_since is None or first < self.esp_silent_since:
                self.esp_silent_since = first

    def sent(self, now: float) -> None:
        """We sent an IKE datagram or ESP at ``now`` (ESP times may come late and out of
        order)."""
        self.last_sent = max(self.last_sent, now)
        if now > self.last_answer and (
            self.unanswered_since is None or now < self.unanswered_since
        ):
            self.unanswered_since = now

    def observe_rtt(self, rtt: float, retransmits: int) -> None:
        """Round trips of exchanges answered without retransmission (Karn's rule)."""
        if retransmits == 0:
            self.rtt.observe(rtt)

    def carry_over(self, old: PeerLiveness, now: float) -> None:
        """An IKE SA replacing ``old`` (§2.18) keeps its RTT; both directions start fresh."""
        self.rtt = old.rtt
        self.last_inbound = self.last_sent = self.last_answer = now

    # --- what is due ---------------------------------------------------------------------

    def _dead_at(self, policy: LivenessPolicy) -> float | None:
        """The verdict's deadline: the earlier of the two directions' budgets."""
        at = dead_at(self.last_inbound, policy)
        if self.unanswered_since is not None:
            at = earliest(at, dead_at(self.unanswered_since, policy))
        return at

    def _check_at(self, policy: LivenessPolicy) -> tuple[float, Cause] | None:
        """When the next check is due, and why; None while one is in flight."""
        if self.state is not Liveness.ALIVE or policy.dpd_delay <= 0:
            return None
        delay = policy.dpd_delay * (1.0 - self.head_start) if self.head_start else policy.dpd_delay
        if not self.peer_retransmitted and self.unanswered_since is None:
            if self.esp_silent_since is None:  # the common case, after every event
                return self.last_inbound + delay, Cause.IDLE
        candidates = [(self.last_inbound + delay, Cause.IDLE)]
        if self.peer_retransmitted:
            candidates.append((self.last_inbound, Cause.PEER_RETRANSMITS))
        if self.unanswered_since is not None:
            candidates.append((self.unanswered_since + delay, Cause.UNPROVEN))
        if self.esp_silent_since is not None:
            wait = on_demand_wait(self.rtt.rto, self.on_demand_checks, policy.dpd_delay)
            candidates.append((self.esp_silent_since + wait, Cause.NO_REPLY))
        return min(candidates, key=lambda c: c[0])

    def deadline(self, policy: LivenessPolicy) -> float | None:
        at = self._dead_at(policy)
        if (check := self._check_at(policy)) is not None:
            at = earliest(at, check[0])
        return at

    def due(self, now: float, policy: LivenessPolicy) -> Probe | Dead | None:
        deadline = self._dead_at(policy)
        if deadline is not None and now >= deadline:
            return Dead(self.verdict(now))
        check = self._check_at(policy)
        if check is not None and now >= check[0]:
            return Probe(deadline - now, check[1])
        return None

    def _unanswered_from(self) -> float | None:
        """Since when our packets have gone unanswered (the check in flight counts)."""
        times = [t for t in (self.unanswered_since, self.check_started) if t is not None]
        return min(times, default=None)

    def direction(self) -> Direction:
        """Which way failed: the peer heard from while our check went unanswered means ours
        are the packets lost."""
        since = self.unanswered_since if self.check_started is None else self.check_started
        if since is not None and self.last_inbound > since:
            return Direction.OUTBOUND
        return Direction.SILENT

    def _evidence_ended(self, direction: Direction) -> float:
        if direction is Direction.OUTBOUND:
            return self._unanswered_from()
        return self.last_inbound

    def verdict(self, now: float) -> str:
        direction = self.direction()
        since = now - self._evidence_ended(direction)
        if direction is Direction.OUTBOUND:
            return (
                f"our packets stopped reaching the peer: nothing answered for {since:.1f}s "
                "while its packets still arrive"
            )
        return f"no sign of life for {since:.1f}s"

    # --- outputs acted on ------------------------------------------------------------------

    def probe_started(
        self, budget: float, cause: Cause, now: float, policy: LivenessPolicy, early: float
    ) -> list[float]:
        """A liveness check goes out: its retransmission waits, spread inside ``budget``
        from the measured RTT; the next check comes ``early`` (a fraction of
        ``dpd_delay``). On-demand checks more than ``dpd_delay`` apart are not in a row."""
        self._to(cause.state)
        self.cause = cause
        self.peer_retransmitted = False
        self.check_started = now
        if cause is Cause.NO_REPLY:
            self.esp_silent_since = None
            if self.last_on_demand is not None and now - self.last_on_demand > policy.dpd_delay:
                self.on_demand_checks = 0
            self.on_demand_checks += 1
            self.last_on_demand = now
        self.head_start = early
        self.probes_sent += 1
        self.probes_unanswered += 1
        return probe_waits(self.rtt.rto, max(budget, MIN_RTO))

    def declared_dead(self, now: float) -> tuple[float, Direction]:
        """The verdict: how long after the evidence ended it came, and which way failed."""
        direction = self.direction()
        self._to(Liveness.DEAD)
        return now - self._evidence_ended(direction), direction

    @property
    def probing(self) -> bool:
        return self.state in (Liveness.PROBING, Liveness.SUSPECT)
