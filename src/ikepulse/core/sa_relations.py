"""What one IKE SA's life means for the others of its connection and peer: restarts after a
death (dpd_action), ``unique`` replacement, siblings for close_action and make-before-break
reauthentication (RFC 7296 §2.4, §2.8). A part of ``SaManager``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .child_sa import ChildSa
from .connection import Unique
from .events import TunnelRestored
from .liveness import DpdAction
from .randomness import fraction
from .state import IkeState

if TYPE_CHECKING:
    from .hosts import TaskHost


class SaRelations:
    """Recovery and sibling look-ups, on top of the manager's ``find`` (indexed by name)."""

    def on_peer_dead(self, sa: TaskHost, now: float) -> None:
        if sa.policy.dpd_action is DpdAction.RESTART:
            self.restarts.restart(sa, now)

    def on_failed(self, sa: TaskHost, now: float) -> None:
        self.restarts.attempt_failed(sa.name, sa.policy, lambda: fraction(self.rng), now)

    def on_established(self, sa: TaskHost, now: float) -> None:
        """A new IKE SA replaces older ones for the same connection and peer identity as
        ``unique`` says (a reauthentication deletes its predecessor itself)."""
        restart = self.restarts.end(sa.name)
        if restart is not None:
            self.emit(TunnelRestored(sa.name, now - restart.since, restart.attempt + 1))
        unique = sa.connection.unique
        if sa.renewal.reauth_of is not None or unique is Unique.NEVER:
            return
        if unique is Unique.NO and not sa.initial_contact:
            return
        for other in self.siblings(sa):
            # One established after ``sa`` began crossed it (simultaneous initiation): the
            # peer's claim to hold no other SA predates it, so the reconciler decides.
            if other.state is IkeState.ESTABLISHED and other.established_at <= sa.created_at:
                other.replaced(now)

    def siblings(self, sa: TaskHost) -> list[TaskHost]:
        """The other live IKE SAs of ``sa``'s connection with the same peer identity."""
        return [
            other
            for other in self.find(sa.name)
            if other is not sa and other.remote_identity == sa.remote_identity
        ]

    def holds_other_sa(self, sa: TaskHost) -> bool:
        """We hold another live IKE SA of ``sa``'s connection (no INITIAL_CONTACT, §2.4)."""
        return any(other is not sa for other in self.find(sa.name))

    def reauthenticated_copy(self, sa: TaskHost, child: ChildSa) -> ChildSa | None:
        """The CHILD SA of another IKE SA to the same peer that ``child`` duplicates: the
        peer reauthenticates make-before-break and deletes the old IKE SA next."""
        for other in self.siblings(sa):
            for old in other.children:
                if old.carries == child.carries:
                    return old
        return None
