"""How an IKE SA is renewed: its lifetimes, its rekey and reauthentication in progress, and
the rekey collisions they meet (RFC 7296 §2.8, §2.8.2, §2.18).

``IkeRenewal`` replaces a pile of flags with one ``RenewalPhase`` and a transition table;
``due(now)`` says whether the IKE SA must expire, reauthenticate or rekey.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from .connection import ConnectionConfig
from .liveness import earliest
from .state import IdentityEnum, checked

LINGER = 30.0
"""Seconds a retired IKE SA waits for the peer's delete."""
RETRY_AFTER = (5.0, 15.0)
"""A refused rekey (TEMPORARY_FAILURE, §2.25, or any other error) is retried after this
many seconds."""


class RenewalPhase(IdentityEnum):
    IDLE = "idle"
    """Nothing under way; the lifetimes decide what comes next."""
    REKEYING = "rekeying"
    """Our IKE SA rekey (CREATE_CHILD_SA, §1.3.2) is queued or in flight."""
    REKEY_COLLISION = "rekey-collision"
    """Our rekey is in flight and we answered the peer's: the lowest nonce decides (§2.8.2)."""
    REAUTHENTICATING = "reauthenticating"
    """A new IKE SA is being set up to replace this one, make-before-break."""
    RETIRED = "retired"
    """Replaced or redundant: no probes, rekeys or requests; forgotten after LINGER unless
    it takes over after all."""


TRANSITIONS: dict[RenewalPhase, frozenset[RenewalPhase]] = {
    RenewalPhase.IDLE: frozenset(
        {RenewalPhase.REKEYING, RenewalPhase.REAUTHENTICATING, RenewalPhase.RETIRED}
    ),
    RenewalPhase.REKEYING: frozenset(
        {RenewalPhase.IDLE, RenewalPhase.REKEY_COLLISION, RenewalPhase.RETIRED}
    ),
    RenewalPhase.REKEY_COLLISION: frozenset({RenewalPhase.IDLE, RenewalPhase.RETIRED}),
    RenewalPhase.REAUTHENTICATING: frozenset({RenewalPhase.IDLE, RenewalPhase.RETIRED}),
    RenewalPhase.RETIRED: frozenset({RenewalPhase.IDLE}),
}


class Due(Enum):
    """What the lifetimes ask for now."""

    EXPIRE = "expire"
    """Not renewed within over_time: delete the IKE SA (§2.8)."""
    REAUTHENTICATE = "reauthenticate"
    REKEY = "rekey"


class IkeRenewal:
    """The renewal of one IKE SA. ``other`` is the IKE SA this phase is about: the one
    reauthenticating this one, or the peer's new IKE SA of a collision."""

    def __init__(self) -> None:
        self.phase = RenewalPhase.IDLE
        self.other: Any = None
        self.collision_nonce = b""
        """The lower nonce of the peer's rekey we answered (REKEY_COLLISION)."""
        self.reauth_of: Any = None
        """The IKE SA this (new) one reauthenticates; deleted once this one is up."""
        self.rekey_at: float | None = None
        self.reauth_at: float | None = None
        self.expires_at: float | None = None
        self.linger_until: float | None = None

    def to(self, new: RenewalPhase, other: Any = None) -> None:
        self.phase = checked(TRANSITIONS, self.phase, new, "IKE renewal")
        self.other = other

    # --- lifetimes (§2.8) ------------------------------------------------------------------

    def schedule(
        self,
        now: float,
        connection: ConnectionConfig,
        draw: Callable[[], float],
        reauth_at: float | None = None,
    ) -> None:
        """rekey_time and reauth_time (unless ``reauth_at`` carries over from the IKE SA this
        one rekeys), each less a random part up to rand_time (``draw()`` gives a fraction);
        the IKE SA expires over_time after the earlier of the two."""
        self.rekey_at = _jittered(now, connection.rekey_time, connection.ike_jitter, draw)
        self.reauth_at = reauth_at or _jittered(
            now, connection.reauth_time, connection.ike_jitter, draw
        )
        renewals = [] if self.reauth_at is None else [self.reauth_at]
        if connection.rekey_time > 0:
            renewals.append(now + connection.rekey_time)
        self.expires_at = min(renewals) + connection.ike_over_time if renewals else None

    def deadline(self) -> float | None:
        if self.phase is not RenewalPhase.IDLE:
            return self.expires_at
        return earliest(earliest(self.expires_at, self.reauth_at), self.rekey_at)

    def due(self, now: float) -> Due | None:
        """What is due now; the lifetime it answers with is used up (asked once)."""
        if self.expires_at is not None and now >= self.expires_at:
            self.expires_at = None
            return Due.EXPIRE
        if self.phase is not RenewalPhase.IDLE:
            return None
        if self.reauth_at is not None and now >= self.reauth_at:
            self.reauth_at = None
            return Due.REAUTHENTICATE
        if self.rekey_at is not None and now >= self.rekey_at:
            self.rekey_at = None
            return Due.REKEY
        return None

    # --- phases ----------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.phase is RenewalPhase.IDLE

    def rekey_started(self) -> None:
        self.to(RenewalPhase.REKEYING)

    def answered_colliding_rekey(self, theirs: Any, lower_nonce: bytes) -> None:
        self.to(RenewalPhase.REKEY_COLLISION, theirs)
        self.collision_nonce = lower_nonce

    def rekey_ended(self) -> tuple[Any, bytes]:
        """Our rekey finished or was abandoned: the peer's colliding new IKE SA (or None)
        and the lower nonce of its exchange."""
        theirs, nonce = (
            (self.other, self.collision_nonce)
            if self.phase is RenewalPhase.REKEY_COLLISION
            else (None, b"")
        )
        if self.phase in (RenewalPhase.REKEYING, RenewalPhase.REKEY_COLLISION):
            self.to(RenewalPhase.IDLE)
        self.collision_nonce = b""
        return theirs, nonce

    def reauthentication_started(self, new: Any) -> None:
        """``new`` replaces this IKE SA, make-before-break: no rekey or reauth until then."""
        self.rekey_at = self.reauth_at = None
        self.to(RenewalPhase.REAUTHENTICATING, new)

    def reauthentication_over(self, new: Any) -> None:
        """``new`` took over, or was never ours: nothing under way any more."""
        if self.reauthenticating is new:
            self.to(RenewalPhase.IDLE)

    def reauth_refused(self, now: float, fraction: float) -> None:
        """The reauthentication ended before it took over: try again a little later."""
        self.to(RenewalPhase.IDLE)
        self.reauth_at = now + retry_delay(fraction)

    def rekey_refused(self, now: float, fraction: float) -> None:
        """The peer refused our rekey (§2.25): try again a little later."""
        self.rekey_at = now + retry_delay(fraction)

    def retire(self, now: float) -> None:
        self.to(RenewalPhase.RETIRED)
        self.linger_until = now + LINGER

    def reinstated(self) -> None:
        """A retired IKE SA takes over after all."""
        if self.phase is RenewalPhase.RETIRED:
            self.to(RenewalPhase.IDLE)
        self.linger_until = None

    @property
    def reauthenticating(self) -> Any:
        return self.other if self.phase is RenewalPhase.REAUTHENTICATING else None


def _jittered(
    now: float, interval: float, jitter: float, draw: Callable[[], float]
) -> float | None:
    """``now + interval`` less a random part up to ``jitter``, but never more than half of
    ``interval`` (the default rand_time follows the longer of rekey and reauth)."""
    if interval <= 0:
        return None
    return now + interval - min(jitter, interval / 2) * draw()


def retry_delay(fraction: float) -> float:
    """When a refused renewal is tried again."""
    low, high = RETRY_AFTER
    return low + (high - low) * fraction
