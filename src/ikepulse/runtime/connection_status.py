"""What ``status`` says about one configured connection: up, dead or restarting, and how
its last death and restore went (DESIGN.md §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.events import PeerDead, TunnelRestored
    from ..core.sa_manager import SaManager


def connection_status(
    manager: SaManager,
    name: str,
    death: PeerDead | None,
    restored: TunnelRestored | None,
    totals: dict,
) -> dict:
    restart = manager.restarts.get(name)
    if restart is not None:
        liveness = "restarting"
    else:
        liveness = manager.liveness(name) or ("dead" if death and not restored else "down")
    connection = manager.connection(name)
    return {
        "name": name,
        "liveness": liveness,
        "restart_attempts": restart.attempt if restart else 0,
        "overlaps": manager.overlaps(name),
        "remote_addrs": list(connection.remote_addrs),
        "children": [child.name for child in connection.children],
        "totals": totals,
        "last_death": None
        if death is None
        else {
            "reason": death.reason,
            "direction": death.direction,
            "detected_after": round(death.detected_after, 3),
            "action": death.action.value,
        },
        "last_restore": None
        if restored is None
        else {"downtime": round(restored.downtime, 3), "attempts": restored.attempts},
    }
