"""The liveness of one IKE SA's peer: its state, its inputs and what is due (RFC 7296 §2.4,
RFC 3948 §2.3, DESIGN.md §4).

Like aioquic's loss recovery, the part owns its timestamps and answers two questions:
``deadline()`` (when something may next be due) and ``due(now)`` (what is due now). The IKE
SA acts on the answer and reports back (``probe_started``, ``keepalive_sent``, ``declared_dead``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .liveness import (
    MIN_RTO,
    LivenessPolicy,
    RttEstimator,
    dead_at,
    keepalive_due,
    probe_at,
    probe_due,
    probe_waits,
)
from .state import checked


class Liveness(Enum):
    """Liveness state of an IKE SA, shown in status. A connection re-established after its
    peer died is *restarting*: that is the SA manager's state, not an IKE SA's."""

    ALIVE = "alive"
    """A sign of life within ``dpd_delay``, or no check due yet."""
    PROBING = "probing"
    """A liveness check (empty INFORMATIONAL, §2.4) is in flight."""
    DEAD = "dead"
    """The detection budget ran out, or the peer evidently lost its state."""


TRANSITIONS: dict[Liveness, frozenset[Liveness]] = {
    Liveness.ALIVE: frozenset({Liveness.PROBING, Liveness.DEAD}),
    Liveness.PROBING: frozenset({Liveness.ALIVE, Liveness.DEAD}),
    Liveness.DEAD: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Probe:
    """Send a liveness check now; its retransmissions must fit in ``budget`` seconds."""

    budget: float


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Send a NAT-T keepalive now (RFC 3948 §2.3)."""


@dataclass(frozen=True, slots=True)
class Dead:
    """The detection budget ran out."""

    reason: str


class PeerLiveness:
    """Signs of life in, probes and keepalives out, the verdict at the budget's end."""

    def __init__(self, now: float) -> None:
        self.state = Liveness.ALIVE
        self.last_inbound = now
        """The last sign of life: an authenticated IKE message or an inbound ESP packet."""
        self.last_outbound = now
        self.rtt = RttEstimator()
        self.probes_sent = 0
        self.probes_unanswered = 0

    def _to(self, new: Liveness) -> None:
        self.state = checked(TRANSITIONS, self.state, new, "liveness")

    # --- inputs ------------------------------------------------------------------------

    def sign_of_life(self, now: float) -> None:
        """An authenticated IKE message or an inbound ESP packet: the peer is alive."""
        self.last_inbound = max(self.last_inbound, now)
        self.probes_unanswered = 0
        if self.state is Liveness.PROBING:
            self._to(Liveness.ALIVE)

    def esp_activity(self, last_inbound: float | None, last_outbound: float | None) -> None:
        """Per-CHILD SA traffic times from the data plane (traffic is proof of life)."""
        if last_inbound is not None and last_inbound > self.last_inbound:
            self.sign_of_life(last_inbound)
        if last_outbound is not None:
            self.sent(last_outbound)

    def sent(self, now: float) -> None:
        self.last_outbound = max(self.last_outbound, now)

    def observe_rtt(self, rtt: float, retransmits: int) -> None:
        """Round trips of exchanges answered without retransmission (Karn's rule)."""
        if retransmits == 0:
            self.rtt.observe(rtt)

    def carry_over(self, old: PeerLiveness, now: float) -> None:
        """An IKE SA replacing ``old`` (§2.18) keeps its RTT; both directions start fresh."""
        self.rtt, self.last_inbound, self.last_outbound = old.rtt, now, now

    # --- what is due ---------------------------------------------------------------------

    def deadline(self, policy: LivenessPolicy, behind_nat: bool) -> float | None:
        times = [dead_at(self.last_inbound, policy)]
        if self.state is Liveness.ALIVE:
            times.append(probe_at(self.last_inbound, policy))
        if behind_nat and policy.nat_keepalive > 0:
            times.append(self.last_outbound + policy.nat_keepalive)
        return min((t for t in times if t is not None), default=None)

    def due(
        self, now: float, policy: LivenessPolicy, behind_nat: bool
    ) -> Probe | Keepalive | Dead | None:
        deadline = dead_at(self.last_inbound, policy)
        if deadline is not None and now >= deadline:
            return Dead(f"no sign of life for {now - self.last_inbound:.1f}s")
        if self.state is Liveness.ALIVE and probe_due(now, self.last_inbound, policy):
            return Probe(deadline - now)
        if keepalive_due(now, self.last_outbound, behind_nat, policy.nat_keepalive):
            return Keepalive()
        return None

    # --- outputs acted on ------------------------------------------------------------------

    def probe_started(self, budget: float) -> list[float]:
        """A liveness check goes out: its retransmission waits, spread inside ``budget``
        from the measured RTT."""
        self._to(Liveness.PROBING)
        self.probes_sent += 1
        self.probes_unanswered += 1
        return probe_waits(self.rtt.rto, max(budget, MIN_RTO))

    def keepalive_sent(self, now: float) -> None:
        self.last_outbound = now

    def declared_dead(self, now: float) -> float:
        """The verdict; returns how long after the last sign of life it came."""
        self._to(Liveness.DEAD)
        return now - self.last_inbound

    @property
    def probing(self) -> bool:
        return self.state is Liveness.PROBING
