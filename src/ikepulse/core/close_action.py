"""What a peer's delete does to our CHILD SAs (swanctl.conf ``close_action``).

Only a delete the peer asked for, outside a rekey, counts: its Delete of an installed CHILD
SA alone, or its Delete of an established IKE SA that is not being reauthenticated, which
closes every CHILD SA it carries. Each closed child then gets its own ``close_action``, as
strongSwan does (``child_delete``'s passive delete, ``ike_sa.reestablish`` on a peer's IKE
delete):

    close_action  CHILD SA deleted alone            IKE SA deleted
    none          nothing                           nothing
    trap          trap its selectors                trap its selectors
    start         CREATE_CHILD_SA on the same SA    a new IKE SA with the ``start`` children,
                                                    through the restart machinery (backoff,
                                                    jitter, never two IKE SAs)

Deletes we make (admin, expiry, rekey, reauthentication, replace, the reconciler) never call
these functions. Nor is a child closed that another established IKE SA with the same peer
still carries: the peer reauthenticated make-before-break, or deleted a duplicate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .connection import CloseAction
from .events import ChildSaTrapped
from .state import IkeState

if TYPE_CHECKING:
    from .hosts import SaRegistry, TaskHost


def carried_elsewhere(manager: SaRegistry, sa: TaskHost) -> set[str]:
    """The children that other established IKE SAs with ``sa``'s peer carry."""
    return {
        child.name
        for other in manager.siblings(sa)
        if other.state is IkeState.ESTABLISHED
        for child in other.children
    }


def ike_closed(manager: SaRegistry, sa: TaskHost, children: list[str], now: float) -> None:
    """The peer deleted ``sa``, which carried CHILD SAs of ``children``."""
    connection = sa.connection
    if connection is None:
        return
    start, elsewhere = [], carried_elsewhere(manager, sa)
    for name in [n for n in dict.fromkeys(children) if n not in elsewhere]:
        action = connection.child(name).close_action
        if action is CloseAction.TRAP:
            manager.counters["close_action_traps"] += 1
            manager.emit(ChildSaTrapped(sa.name, name))
        elif action is CloseAction.START:
            start.append(name)
    if start and manager.restarts.restart(sa, now, tuple(start)):
        manager.counters["close_action_restarts"] += 1


def child_closed(manager: SaRegistry, sa: TaskHost, children: list[str], now: float) -> None:
    """The peer deleted CHILD SAs of ``children`` on ``sa`` alone. A child that still has
    another CHILD SA there (the redundant one of a rekey collision was deleted) is not
    closed."""
    if sa.state is not IkeState.ESTABLISHED or sa.connection is None:
        return
    present = {child.name for child in sa.children} | carried_elsewhere(manager, sa)
    for name in dict.fromkeys(children):
        if name in present:
            continue
        config = sa.connection.child(name)
        if config.close_action is CloseAction.START:
            manager.counters["close_action_children_created"] += 1
            manager.reconciler.attempted(sa, name, now)
            sa.children.create(config, now)
            continue
        manager.reconciler.release(sa, name)
        if config.close_action is CloseAction.TRAP:
            manager.counters["close_action_traps"] += 1
            manager.emit(ChildSaTrapped(sa.name, name))
