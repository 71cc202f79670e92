"""One IKE SA following another: make-before-break reauthentication and the outcome of IKE
rekeys and their collisions (RFC 7296 §2.8, §2.8.2, §2.18).

The renewal phases live in each SA's ``IkeRenewal``; these functions move them between the
two IKE SAs involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .events import IkeSaReauthenticated, IkeSaRekeyed
from .randomness import fraction
from .renewal import Due, RenewalPhase
from .state import IkeState

if TYPE_CHECKING:
    from .hosts import TaskHost


def renew(sa: TaskHost, due: Due, now: float) -> None:
    """Do what the lifetimes ask for (``IkeRenewal.due``)."""
    if due is Due.EXPIRE:
        sa.delete(now)
    elif due is Due.REAUTHENTICATE:
        sa.reauthenticate(now)
    else:
        sa.rekey(now)


def reauthenticate(old: TaskHost, now: float):
    """A new IKE SA from scratch (IKE_SA_INIT, IKE_AUTH) with ``old``'s CHILD SAs; ``old``
    is deleted once they are up. None if ``old`` is not established or already renewing."""
    if old.state is not IkeState.ESTABLISHED or not old.renewal.idle:
        return None
    connection = old.connection
    names = dict.fromkeys(child.name for child in old.children)
    children = [connection.child(name) for name in names] or list(connection.children)
    new = old.manager.initiate(
        old.name,
        (old.local[0], connection.local_port),
        (old.remote[0], connection.remote_port),
        now,
        children=children,
        reauth_of=old,
    )
    old.renewal.reauthentication_started(new)
    return new


def reauthenticated(new: TaskHost, now: float) -> None:
    """``new`` is up with its CHILD SAs: the IKE SA it reauthenticates goes."""
    old = new.renewal.reauth_of
    if old is None:
        return
    new.renewal.reauth_of = None
    old.renewal.reauthentication_over(new)
    new.emit(IkeSaReauthenticated(new.name, old.spi_i, new.spi_i))
    old.delete(now)


def reauth_failed(new: TaskHost, now: float) -> None:
    """``new`` ended before taking over: the IKE SA it reauthenticates tries again later."""
    old = new.renewal.reauth_of
    if old is not None and old.renewal.reauthenticating is new:
        new.renewal.reauth_of = None
        old.renewal.reauth_refused(now, fraction(old.rng))


def move_reauthentication(old: TaskHost, successor: TaskHost) -> None:
    """``old`` is rekeyed while a reauthentication of it is under way: ``successor`` is the
    one the new IKE SA replaces now."""
    new = old.renewal.reauthenticating
    if new is None:
        return
    old.renewal.reauthentication_over(new)
    successor.renewal.to(RenewalPhase.REAUTHENTICATING, new)
    new.renewal.reauth_of = successor


def take_over(new: TaskHost, old: TaskHost, now: float) -> None:
    """``new`` becomes the successor of ``old`` after an IKE SA rekey (§2.18): the CHILD SAs,
    their timers and a reauthentication under way move to it."""
    new.inherit(old, now)
    new.children.take(old.children.hand_over(), now)
    new.renewal.schedule(now, new.connection, lambda: fraction(new.rng), old.renewal.reauth_at)
    move_reauthentication(old, new)
    new.emit(
        IkeSaRekeyed(new.name, old.spi_i, old.spi_r, new.spi_i, new.spi_r, *new.exported_keys())
    )


def retire(sa: TaskHost, now: float) -> None:
    """An IKE SA the peer will delete (the old one after the peer rekeyed it, or a redundant
    one of §2.8.2) or one whose fate a rekey collision decides: no probes, rekeys or queued
    requests; forgotten after LINGER unless taken over."""
    sa.tasks.cancel_queued()
    if sa.state is IkeState.ESTABLISHED:
        sa.state_to(IkeState.DELETING)
    sa.renewal.retire(now)


def lost_rekey_collision(sa: TaskHost, now: float) -> None:
    """The peer deletes ``sa`` while both of us rekey it: the peer's new IKE SA survived
    (§2.8.2), so the CHILD SAs move there and our rekey is abandoned."""
    theirs, _ = sa.renewal.rekey_ended()
    sa.tasks.abort()
    if not theirs.finished:
        take_over(theirs, sa, now)
