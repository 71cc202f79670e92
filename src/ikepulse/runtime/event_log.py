"""One log line per core event, in strongSwan's style (``name[spi]``, ``name{child}``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    ChildSaRekeyed,
    ChildSaTrapped,
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaReauthenticated,
    IkeSaRekeyed,
    PeerDead,
    SaEndpointsChanged,
    TunnelRestored,
)
from .logs import RATE_LIMIT

log = logging.getLogger("ikepulse.daemon")
_EVIDENCE = {"outbound": "our first unanswered packet", "silent": "its last sign of life"}
"""What a PeerDead's ``detected_after`` counts from, by its direction."""


def _selectors(selectors) -> str:
    return ",".join(map(str, selectors))


LINES: dict[type, tuple[int, Callable]] = {
    IkeSaEstablished: (
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.spi_i.hex()}] established "
            f"{e.local[0]}[{e.local[1]}] <-> {e.remote[0]}[{e.remote[1]}] {e.proposal}"
        ),
    ),
    ChildSaInstalled: (
        logging.INFO,
        lambda e: (
            f"CHILD SA {e.connection}{{{e.child}}} installed, SPIs {e.spi_in.hex()}_i "
            f"{e.spi_out.hex()}_o, {_selectors(e.local_ts)} === {_selectors(e.remote_ts)}, "
            f"{e.proposal}"
        ),
    ),
    IkeSaFailed: (
        logging.WARNING,
        lambda e: f"IKE SA {e.connection or '?'}[{e.spi_i.hex()}] failed: {e.reason}",
    ),
    ChildSaFailed: (
        logging.WARNING,
        lambda e: f"CHILD SA {e.connection}{{{e.child}}} failed: {e.reason}",
    ),
    IkeSaDeleted: (
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.spi_i.hex()}] deleted"
            + (" by the peer" if e.by_peer else "")
        ),
    ),
    ChildSaDeleted: (logging.INFO, lambda e: f"CHILD SA {e.connection}{{{e.child}}} deleted"),
    ChildSaTrapped: (
        logging.INFO,
        lambda e: f"CHILD SA {e.connection}{{{e.child}}} closed by the peer, trap installed",
    ),
    PeerDead: (
        logging.WARNING,
        lambda e: (
            f"peer of {e.connection}[{e.spi_i.hex()}] is dead ({e.direction}): {e.reason}; "
            f"detected {e.detected_after:.2f}s after {_EVIDENCE[e.direction]}; "
            f"dpd_action = {e.action.value}"
        ),
    ),
    ChildSaRekeyed: (
        logging.INFO,
        lambda e: (
            f"CHILD SA {e.connection}{{{e.child}}} rekeyed, {e.old_spi_in.hex()}_i "
            f"replaced by {e.spi_in.hex()}_i"
        ),
    ),
    IkeSaReauthenticated: (
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.old_spi_i.hex()}] reauthenticated by "
            f"{e.connection}[{e.spi_i.hex()}], deleting the old one"
        ),
    ),
    IkeSaRekeyed: (
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.old_spi_i.hex()}] rekeyed, now "
            f"{e.spi_i.hex()}_i {e.spi_r.hex()}_r"
        ),
    ),
    SaEndpointsChanged: (
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.spi_i.hex()}] moved to {e.local[0]}[{e.local[1]}] <-> "
            f"{e.remote[0]}[{e.remote[1]}]{' (UDP-encapsulated ESP)' if e.udp_encap else ''}, "
            f"{len(e.spis_in)} CHILD SA(s) follow"
        ),
    ),
    TunnelRestored: (
        logging.INFO,
        lambda e: (
            f"tunnel {e.connection} restored after {e.downtime:.2f}s ({e.attempts} attempt(s))"
        ),
    ),
}


def log_event(event: Event) -> None:
    """One line, with the event's kind and connection as fields (``--log-format json``).
    Failed IKE SAs are rate-limited: anyone can make IKE_SA_INIT (or an IKE_AUTH before
    the peer is authenticated) fail, as often as it can send."""
    level, line = LINES[type(event)]
    if log.isEnabledFor(level):
        fields = {"event": type(event).__name__, "connection": getattr(event, "connection", "")}
        if isinstance(event, IkeSaFailed):
            fields[RATE_LIMIT] = "IKE SA failed"
        log.log(level, "%s", line(event), extra=fields)
