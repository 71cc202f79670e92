"""IKE SA states and their legal transitions (RFC 7296 §1.2, §1.4, §2.4)."""

from __future__ import annotations

from enum import Enum


class IdentityEnum(Enum):
    """An Enum hashed by identity, in C. ``Enum.__hash__`` is Python code, and the states
    and purposes below are looked up in transition and exchange tables on every event;
    members are singletons, so equal means identical."""

    __hash__ = object.__hash__


class IkeState(IdentityEnum):
    CREATED = "created"
    """Nothing sent or received yet."""
    CONNECTING = "connecting"
    """IKE_SA_INIT / IKE_AUTH in progress (§1.2)."""
    ESTABLISHED = "established"
    """IKE_AUTH completed; INFORMATIONAL and CREATE_CHILD_SA possible (§1.3, §1.4)."""
    DELETING = "deleting"
    """We sent a Delete for the IKE SA and wait for the answer (§1.4.1)."""
    DELETED = "deleted"
    """Deleted by either side; no further messages."""
    FAILED = "failed"
    """Setup failed or the peer stopped answering (§2.4)."""


TRANSITIONS: dict[IkeState, frozenset[IkeState]] = {
    IkeState.CREATED: frozenset({IkeState.CONNECTING, IkeState.FAILED, IkeState.DELETED}),
    IkeState.CONNECTING: frozenset({IkeState.ESTABLISHED, IkeState.FAILED, IkeState.DELETED}),
    IkeState.ESTABLISHED: frozenset({IkeState.DELETING, IkeState.DELETED, IkeState.FAILED}),
    IkeState.DELETING: frozenset({IkeState.DELETED, IkeState.FAILED}),
    IkeState.DELETED: frozenset(),
    IkeState.FAILED: frozenset(),
}

FINAL = frozenset({IkeState.DELETED, IkeState.FAILED})


def checked(transitions: dict, current: Enum, new: Enum, what: str):
    """``new``, if ``transitions`` allows ``current`` -> ``new`` (staying put always is):
    every part's state changes go through here."""
    if new is not current and new not in transitions[current]:
        raise AssertionError(f"{what} {current.name} -> {new.name} is not allowed")
    return new
