"""What a configuration reload changes, connection by connection (like ``swanctl --load-all``).

Connections are compared by value: a connection equal to its running version keeps its SAs
untouched; one that differs is replaced (its SAs deleted, then started per its new
``start_action``); one that is gone is closed; a new one is started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .connection import ConnectionConfig


@dataclass(frozen=True, slots=True)
class ConnectionDiff:
    """Names of connections, each tuple in the order of the new (or, for ``removed``, the
    old) configuration."""

    added: tuple[str, ...]
    """In the new configuration only."""
    removed: tuple[str, ...]
    """In the running configuration only."""
    changed: tuple[str, ...]
    """In both, with different values."""
    unchanged: tuple[str, ...]
    """In both, equal by value."""

    @property
    def replaced(self) -> tuple[str, ...]:
        """Whose SAs go: the removed and the changed."""
        return self.removed + self.changed

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("added", self.added),
                ("changed", self.changed),
                ("removed", self.removed),
            )
            if names
        ]
        return "; ".join(parts) or "no change"


def diff_connections(
    running: Iterable[ConnectionConfig], new: Iterable[ConnectionConfig]
) -> ConnectionDiff:
    """Compare two configurations by connection name, then by value."""
    old = {c.name: c for c in running}
    fresh = {c.name: c for c in new}
    return ConnectionDiff(
        added=tuple(n for n in fresh if n not in old),
        removed=tuple(n for n in old if n not in fresh),
        changed=tuple(n for n, c in fresh.items() if n in old and old[n] != c),
        unchanged=tuple(n for n, c in fresh.items() if n in old and old[n] == c),
    )
