"""Status of IKE and CHILD SAs as JSON-ready dicts, SPIs written the way swanctl writes them.

The runtime asks ``SaManager.status``; it never reads an ``IkeSa`` itself (DESIGN.md §2)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..crypto.cert_ids import dn_text, rdns_of_name
from .children import ChildEntry
from .ike_sa import IkeSa

_KEPT_LIMIT = 1 << 17
"""Objects whose text is kept by identity: about six per IKE SA (identities, suites,
selectors), so 20,000 tunnels; beyond, lookups fall through to the texts kept by value.
Emptied when full: what it holds of deleted SAs lives no longer than that."""
_kept: dict[int, tuple[object, str]] = {}
"""Texts by the identity of the object written: the same SA objects are written again by
every status (all frozen: a text kept never goes stale), and a lookup by ``id`` skips hashing
a selector's addresses (4 µs an SA)."""


@lru_cache(maxsize=1 << 16)
def _by_value(value: object) -> str:
    return str(value)


def _text(value: object) -> str:
    """``str`` of a traffic selector, suite or identity: the same few thousand are written for
    every status (summarizing an address range each time made a 10,000-SA status take
    seconds; an identity's text costs 2 µs, 40 ms a status at 10,000)."""
    kept = _kept.get(id(value))
    if kept is not None and kept[0] is value:  # kept holds value: its id is not reused
        return kept[1]
    if len(_kept) >= _KEPT_LIMIT:
        _kept.clear()
    text = _kept[id(value)] = (value, _by_value(value))
    return text[1]


def _host(address: tuple[str, int]) -> dict[str, Any]:
    return {"host": address[0], "port": address[1]}


def _at(t: float | None, to_wall: float) -> float | None:
    return None if t is None else t + to_wall


def _child(sa: IkeSa, entry: ChildEntry, to_wall: float, traffic: dict) -> dict[str, Any]:
    child, limits = entry.child, entry.limits
    return {
        "name": child.name,
        "state": entry.phase.value,
        "spi_in": child.spi_in.hex(),
        "spi_out": child.spi_out.hex(),
        "mode": child.mode.name,
        "proposal": _text(child.suite),
        "local_ts": [_text(ts) for ts in child.local_ts],
        "remote_ts": [_text(ts) for ts in child.remote_ts],
        "installed": child.installed_at + to_wall,
        "rekey_at": _at(limits.rekey_at, to_wall),
        "expires_at": _at(limits.expires_at, to_wall),
        "rekey_bytes": limits.rekey_bytes,
        "life_bytes": limits.life_bytes,
        "rekey_packets": limits.rekey_packets,
        "life_packets": limits.life_packets,
        "udp_encap": sa.udp_encap,
        "vnet": child.vnet,
        **traffic,
    }


def _certificate(cert) -> dict[str, Any] | None:
    """The peer's certificate: its subject and the Unix time it expires."""
    if cert is None:
        return None
    return {
        "subject": dn_text(rdns_of_name(cert.subject)),
        "not_after": cert.not_valid_after_utc.timestamp(),
    }


def _last_outbound(sa) -> float:
    """Our last datagram or ESP packet to the peer, NAT-T keepalives on its flow included."""
    flow = sa.manager.sas.flows.last(sa.local, sa.remote)
    return sa.liveness.last_sent if flow is None else max(flow, sa.liveness.last_sent)


def ike_sa_status(
    sa: IkeSa, to_wall: float, traffic: Callable[[bytes], dict] = lambda spi: {}
) -> dict[str, Any]:
    """One IKE SA; ``to_wall`` converts the core's monotonic times to Unix time and
    ``traffic(spi_in)`` gives a CHILD SA's data plane counters."""
    return {
        "connection": sa.name,
        "version": sa.version,
        "state": sa.state.name,
        "initiator": sa.initiator,
        "local": _host(sa.local),
        "remote": _host(sa.remote),
        "local_id": _text(sa.local_identity) if sa.local_identity else None,
        "remote_id": _text(sa.remote_identity) if sa.remote_identity else None,
        "spi_i": sa.spi_i.hex(),
        "spi_r": sa.spi_r.hex(),
        "proposal": _text(sa.sk.suite) if sa.sk.suite else None,
        "established": _at(sa.established_at, to_wall),
        "rekey_at": _at(sa.renewal.rekey_at, to_wall),
        "reauth_at": _at(sa.renewal.reauth_at, to_wall),
        "expires_at": _at(sa.renewal.expires_at, to_wall),
        "renewal": sa.renewal.phase.value,
        "nat_local": sa.nat_local,
        "nat_remote": sa.nat_remote,
        "mobike": sa.mobility.enabled,
        "liveness": {
            "state": sa.liveness.state.value,
            "cause": sa.liveness.cause.value if sa.liveness.cause else None,
            "last_inbound": sa.liveness.last_inbound + to_wall,
            "last_outbound": _last_outbound(sa) + to_wall,
            "last_answer": sa.liveness.last_answer + to_wall,
            "unanswered_since": _at(sa.liveness.unanswered_since, to_wall),
            "srtt": sa.liveness.rtt.srtt,
            "rto": sa.liveness.rtt.rto,
            "probes_sent": sa.liveness.probes_sent,
            "probes_unanswered": sa.liveness.probes_unanswered,
        },
        "peer_certificate": _certificate(sa.peer_certificate),
        "children": [
            _child(sa, entry, to_wall, traffic(entry.spi_in)) for entry in sa.children.entries()
        ],
    }
