"""Each core event once: its kind, severity, log line (strongSwan style, ``name[spi]``,
``name{child}``) and JSON fields. The log, the event stream (``ikepulse events``) and the
live view all read this one table.

Kinds follow strongSwan's vici events (``ike-updown``, ``child-updown``, ``ike-rekey``,
``child-rekey``, ``alert``), split by direction, plus our liveness verdicts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
from ..wire.enums import NotifyType
from .logs import RATE_LIMIT

log = logging.getLogger("ikepulse.daemon")
_EVIDENCE = {"outbound": "our first unanswered packet", "silent": "its last sign of life"}
"""What a PeerDead's ``detected_after`` counts from, by its direction."""

_CAUSES = {
    NotifyType.NO_PROPOSAL_CHOSEN: "proposal-mismatch",
    NotifyType.AUTHENTICATION_FAILED: "auth-failed",
    NotifyType.TS_UNACCEPTABLE: "ts-mismatch",
    NotifyType.INVALID_KE_PAYLOAD: "ke-mismatch",
}


def failure_cause(reason: str, notify: NotifyType | None) -> str:
    """A failure's cause as one word, like vici's ``alert`` types: the error notify first
    (RFC 7296 §3.10.1), then exhausted retransmissions (§2.1), else ``error``."""
    if notify in _CAUSES:
        return _CAUSES[notify]
    if "no response to" in reason:
        return "retransmit-timeout"
    if notify is not None:
        return getattr(notify, "name", str(notify)).lower().replace("_", "-")
    return "error"


def _selectors(selectors) -> str:
    return ",".join(map(str, selectors))


def _addr(address: tuple[str, int]) -> str:
    return f"{address[0]}[{address[1]}]"


def _notify(notify: NotifyType | None) -> str | None:
    return None if notify is None else getattr(notify, "name", str(notify))


@dataclass(frozen=True, slots=True)
class EventSpec:
    """How one event type is shown."""

    kind: str
    """Stable name of the event in the stream (``ike-up``, ``peer-dead``, ...)."""
    level: int
    """Log level; its lower-case name is the stream's ``severity``."""
    text: Callable[[Any], str]
    """The log line."""
    fields: Callable[[Any], dict]
    """JSON-ready details for the stream, beyond kind, severity, connection and text."""


TABLE: dict[type, EventSpec] = {
    IkeSaEstablished: EventSpec(
        "ike-up",
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.spi_i.hex()}] established "
            f"{_addr(e.local)} <-> {_addr(e.remote)} {e.proposal}"
        ),
        lambda e: {
            "ike_sa": e.spi_i.hex(),
            "spi_r": e.spi_r.hex(),
            "local": _addr(e.local),
            "remote": _addr(e.remote),
            "proposal": e.proposal,
            "initiator": e.initiator,
        },
    ),
    ChildSaInstalled: EventSpec(
        "child-up",
        logging.INFO,
        lambda e: (
            f"CHILD SA {e.connection}{{{e.child}}} installed, SPIs {e.spi_in.hex()}_i "
            f"{e.spi_out.hex()}_o, {_selectors(e.local_ts)} === {_selectors(e.remote_ts)}, "
            f"{e.proposal}"
        ),
        lambda e: {
            "child": e.child,
            "spi_in": e.spi_in.hex(),
            "spi_out": e.spi_out.hex(),
            "local_ts": [str(ts) for ts in e.local_ts],
            "remote_ts": [str(ts) for ts in e.remote_ts],
            "proposal": e.proposal,
            "udp_encap": e.udp_encap,
            "vnet": e.vnet,
            "replaces": None if e.replaces is None else e.replaces.hex(),
        },
    ),
    IkeSaFailed: EventSpec(
        "ike-failed",
        logging.WARNING,
        lambda e: f"IKE SA {e.connection or '?'}[{e.spi_i.hex()}] failed: {e.reason}",
        lambda e: {
            "ike_sa": e.spi_i.hex(),
            "cause": failure_cause(e.reason, e.notify),
            "reason": e.reason,
            "notify": _notify(e.notify),
        },
    ),
    ChildSaFailed: EventSpec(
        "child-failed",
        logging.WARNING,
        lambda e: f"CHILD SA {e.connection}{{{e.child}}} failed: {e.reason}",
        lambda e: {
            "child": e.child,
            "cause": failure_cause(e.reason, e.notify),
            "reason": e.reason,
            "notify": _notify(e.notify),
        },
    ),
    IkeSaDeleted: EventSpec(
        "ike-down",
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.spi_i.hex()}] deleted"
            + (" by the peer" if e.by_peer else "")
        ),
        lambda e: {"ike_sa": e.spi_i.hex(), "spi_r": e.spi_r.hex(), "by_peer": e.by_peer},
    ),
    ChildSaDeleted: EventSpec(
        "child-down",
        logging.INFO,
        lambda e: f"CHILD SA {e.connection}{{{e.child}}} deleted",
        lambda e: {
            "child": e.child,
            "spi_in": e.spi_in.hex(),
            "spi_out": e.spi_out.hex(),
            "by_peer": e.by_peer,
        },
    ),
    ChildSaTrapped: EventSpec(
        "child-trapped",
        logging.INFO,
        lambda e: f"CHILD SA {e.connection}{{{e.child}}} closed by the peer, trap installed",
        lambda e: {"child": e.child},
    ),
    PeerDead: EventSpec(
        "peer-dead",
        logging.WARNING,
        lambda e: (
            f"peer of {e.connection}[{e.spi_i.hex()}] is dead ({e.direction}): {e.reason}; "
            f"detected {e.detected_after:.2f}s after {_EVIDENCE[e.direction]}; "
            f"dpd_action = {e.action.value}"
        ),
        lambda e: {
            "ike_sa": e.spi_i.hex(),
            "cause": f"peer-dead-{e.direction}",
            "direction": e.direction,
            "detected_after": round(e.detected_after, 3),
            "reason": e.reason,
            "action": e.action.value,
        },
    ),
    ChildSaRekeyed: EventSpec(
        "child-rekey",
        logging.INFO,
        lambda e: (
            f"CHILD SA {e.connection}{{{e.child}}} rekeyed, {e.old_spi_in.hex()}_i "
            f"replaced by {e.spi_in.hex()}_i"
        ),
        lambda e: {"child": e.child, "old_spi_in": e.old_spi_in.hex(), "spi_in": e.spi_in.hex()},
    ),
    IkeSaReauthenticated: EventSpec(
        "ike-reauth",
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.old_spi_i.hex()}] reauthenticated by "
            f"{e.connection}[{e.spi_i.hex()}], deleting the old one"
        ),
        lambda e: {"old_ike_sa": e.old_spi_i.hex(), "ike_sa": e.spi_i.hex()},
    ),
    IkeSaRekeyed: EventSpec(
        "ike-rekey",
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.old_spi_i.hex()}] rekeyed, now "
            f"{e.spi_i.hex()}_i {e.spi_r.hex()}_r"
        ),
        lambda e: {
            "old_ike_sa": e.old_spi_i.hex(),
            "ike_sa": e.spi_i.hex(),
            "spi_r": e.spi_r.hex(),
        },
    ),
    SaEndpointsChanged: EventSpec(
        "endpoints-changed",
        logging.INFO,
        lambda e: (
            f"IKE SA {e.connection}[{e.spi_i.hex()}] moved to {_addr(e.local)} <-> "
            f"{_addr(e.remote)}{' (UDP-encapsulated ESP)' if e.udp_encap else ''}, "
            f"{len(e.spis_in)} CHILD SA(s) follow"
        ),
        lambda e: {
            "ike_sa": e.spi_i.hex(),
            "local": _addr(e.local),
            "remote": _addr(e.remote),
            "udp_encap": e.udp_encap,
            "children": len(e.spis_in),
        },
    ),
    TunnelRestored: EventSpec(
        "restored",
        logging.INFO,
        lambda e: (
            f"tunnel {e.connection} restored after {e.downtime:.2f}s ({e.attempts} attempt(s))"
        ),
        lambda e: {"downtime": round(e.downtime, 3), "attempts": e.attempts},
    ),
}


def describe(event: Event, at: float) -> dict:
    """The event as one JSON-ready record, stamped with Unix time ``at``."""
    spec = TABLE[type(event)]
    return {
        "time": round(at, 3),
        "kind": spec.kind,
        "severity": logging.getLevelName(spec.level).lower(),
        "connection": event.connection,
        "text": spec.text(event),
        **spec.fields(event),
    }


def log_event(event: Event) -> None:
    """One line, with the event's kind and connection as fields (``--log-format json``).
    Failed IKE SAs are rate-limited: anyone can make IKE_SA_INIT (or an IKE_AUTH before
    the peer is authenticated) fail, as often as it can send."""
    spec = TABLE[type(event)]
    if log.isEnabledFor(spec.level):
        fields = {"event": type(event).__name__, "connection": getattr(event, "connection", "")}
        if isinstance(event, IkeSaFailed):
            fields[RATE_LIMIT] = "IKE SA failed"
        log.log(spec.level, "%s", spec.text(event), extra=fields)
