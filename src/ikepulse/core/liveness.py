"""Liveness as pure functions over timestamps (RFC 7296 §2.4, RFC 3948 §2.3, RFC 6298).

A path broken in either direction is declared dead no later than ``dpd_delay +
dpd_timeout`` after the evidence stopped: the peer's last sign of life (an authenticated IKE
message or an inbound ESP packet), or, for our direction, the first packet we sent after
the last answer to one of our requests. Probe retransmissions are spread inside the
``dpd_timeout`` budget from the measured round-trip time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MIN_RTO = 0.2
"""Floor of a probe's retransmission timeout (LAN round trips are far below it)."""
MAX_RTO = 10.0
INITIAL_RTO = 1.0
"""Before any round trip is measured (RFC 6298 §2.1 uses 1 s as well)."""
MAX_PROBE_SENDS = 16
ON_DEMAND_FLOOR = 0.5
"""Shortest wait for an answer to outbound ESP before an on-demand check."""
ON_DEMAND_RTOS = 2
"""The on-demand wait in retransmission timeouts: a reply normally comes within one RTT."""


class DpdAction(Enum):
    """What to do with a dead peer (swanctl.conf ``dpd_action``)."""

    CLEAR = "clear"
    """Delete the SAs; traffic for the selectors is dropped."""
    HOLD = "hold"
    """Delete the SAs and trap the selectors: new traffic re-negotiates."""
    RESTART = "restart"
    """Re-establish at once, then with exponential backoff while the peer stays away."""


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    """A connection's liveness knobs (DESIGN.md §4), built by ``ikepulse.config``."""

    dpd_delay: float
    """Seconds without a sign of life before a probe (0: no probing)."""
    dpd_timeout: float
    """The detection budget after ``dpd_delay``: dead no later than their sum."""
    dpd_action: DpdAction
    nat_keepalive: float
    """Outbound-idle seconds before a NAT-T keepalive (0: none)."""
    # Not configuration knobs: the ``restart`` backoff is fixed by the daemon, like the RTO
    # bounds above. They sit on the policy so restart_delay() stays a pure function of its
    # arguments and a test can vary them.
    restart_base: float = 1.0
    """First wait before re-establishing a dead peer after the immediate attempt."""
    restart_cap: float = 60.0
    """Longest wait between attempts."""
    restart_jitter: float = 0.25
    """Each wait is shortened by a random fraction up to this much."""
    first_check_spread: float = 0.25
    """A new IKE SA's first liveness check comes early by a random fraction of
    ``dpd_delay`` up to this much: tunnels set up together do not probe together."""
    check_spread: float = 0.1
    """Every later check comes early by a random fraction of ``dpd_delay`` up to this much,
    drawn anew for each: of two peers checking each other at the same interval, one goes
    first, and the other takes its request as proof of both directions (§2.3) instead of
    sending its own. Without it both fire within a round trip and every tunnel costs two
    exchanges per interval instead of one."""


def probe_due(now: float, last_inbound: float, policy: LivenessPolicy) -> bool:
    """An idle peer gets a liveness check after ``dpd_delay`` without a sign of life."""
    # Written as the timer computes it (last + delay), so a timer firing exactly at
    # probe_at() always finds the probe due despite floating-point rounding.
    return policy.dpd_delay > 0 and now >= last_inbound + policy.dpd_delay


def probe_at(last_inbound: float, policy: LivenessPolicy) -> float | None:
    return None if policy.dpd_delay <= 0 else last_inbound + policy.dpd_delay


def earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, None being none (timers are asked after every event:
    no lists, no generators)."""
    if a is None:
        return b
    return a if b is None or a <= b else b


def dead_at(last_inbound: float, policy: LivenessPolicy) -> float | None:
    """The detection deadline: the budget is a promise, whatever is in flight."""
    if policy.dpd_delay <= 0:
        return None
    return last_inbound + policy.dpd_delay + policy.dpd_timeout


def on_demand_wait(rto: float, checks: int, dpd_delay: float) -> float:
    """How long ESP may go out with nothing coming back before a liveness check: a few
    RTOs, doubled for each on-demand check in a row (traffic that is simply one-way), never
    longer than ``dpd_delay``."""
    return min(dpd_delay, max(ON_DEMAND_FLOOR, ON_DEMAND_RTOS * rto) * 2**checks)


class RttEstimator:
    """SRTT/RTTVAR as in RFC 6298 §2, from exchanges answered without retransmission."""

    __slots__ = ("srtt", "rttvar")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar: float | None = None

    def observe(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
            return
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
        self.srtt = 0.875 * self.srtt + 0.125 * rtt

    @property
    def rto(self) -> float:
        if self.srtt is None:
            return INITIAL_RTO
        return min(MAX_RTO, max(MIN_RTO, self.srtt + 4 * self.rttvar))


def probe_waits(rto: float, budget: float, max_sends: int = MAX_PROBE_SENDS) -> list[float]:
    """Waits between a probe's transmissions, summing exactly to ``budget``.

    Evenly spaced, never closer than the RTO, at most ``max_sends`` transmissions: many
    chances inside a short budget make a lossy but live path survive (20 % loss each way
    fails one probe with probability 0.36**16), and the final silence is the verdict.
    """
    interval = max(rto, budget / max_sends)
    sends = max(1, int(budget / interval))
    return [budget / sends] * sends


def restart_delay(attempt: int, policy: LivenessPolicy, fraction: float) -> float:
    """Exponential backoff with jitter: ``base * 2**attempt`` capped, shortened by up to
    ``restart_jitter`` (``fraction`` in [0, 1) comes from the injected RNG)."""
    if attempt == 0:
        return 0.0
    delay = min(policy.restart_cap, policy.restart_base * 2 ** (attempt - 1))
    return delay * (1 - policy.restart_jitter * fraction)
