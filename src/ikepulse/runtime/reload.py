"""Live reload (SIGHUP, ``ikepulse reload``): re-read the file, apply what changed.

Like ``swanctl --load-all``: a file that does not load is rejected whole and the running
configuration stays; otherwise new connections start per their ``start_action``, changed
ones are deleted and started again, removed ones are deleted, and the SAs of unchanged ones
are not touched (same SPIs, not one packet lost). ``[daemon]`` settings (sockets, ports)
need a restart.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from ..config.loader import ConfigError, load_config

if TYPE_CHECKING:
    from .daemon import Daemon

log = logging.getLogger("ikepulse.reload")


def reload_config(daemon: Daemon) -> dict:
    """Apply the configuration file again; the control socket's answer."""
    path = daemon.settings.path
    try:
        settings = load_config(path)
    except ConfigError as exc:
        daemon.counters["reloads_rejected"] += 1
        log.error("reload rejected, the running configuration stays:\n%s", exc)
        return {"ok": False, "error": f"reload rejected, running configuration kept:\n{exc}"}
    if settings.daemon != daemon.settings.daemon:
        log.warning("reload: changes to [daemon] take effect at the next restart only")
    diff = daemon.manager.replace_connections(settings.connections, daemon.now())
    daemon.settings = dataclasses.replace(daemon.settings, connections=settings.connections)
    daemon.counters["reloads"] += 1
    for name in diff.replaced:
        daemon.dataplane.plane.remove_traps(name)
    errors = []
    for name in diff.added + diff.changed:
        try:
            daemon.start_connection(name)
        except ValueError as exc:  # e.g. start_action = start without a remote address
            errors.append(str(exc))
    daemon.pump()
    log.info("reloaded %s: %s", path, diff.summary())
    for error in errors:
        log.warning("reload: %s", error)
    return {
        "ok": True,
        "message": f"reloaded {path}: {diff.summary()}",
        "added": list(diff.added),
        "changed": list(diff.changed),
        "removed": list(diff.removed),
        "unchanged": list(diff.unchanged),
        "errors": errors,
    }
