"""Status of IKE and CHILD SAs as JSON-ready dicts, SPIs written the way swanctl writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.child_sa import ChildLimits
from ..core.ike_sa import IkeSa


def _host(address: tuple[str, int]) -> dict[str, Any]:
    return {"host": address[0], "port": address[1]}


def _child_limits(sa: IkeSa, spi_in: bytes, to_wall: float) -> dict[str, Any]:
    limits = sa.child_limits.get(spi_in) or ChildLimits()
    return {
        "rekey_at": None if limits.rekey_at is None else limits.rekey_at + to_wall,
        "expires_at": None if limits.expires_at is None else limits.expires_at + to_wall,
        "rekey_bytes": limits.rekey_bytes,
        "life_bytes": limits.life_bytes,
        "rekey_packets": limits.rekey_packets,
        "life_packets": limits.life_packets,
        "rekeying": spi_in in sa.rekeying,
    }


def ike_sa_status(
    sa: IkeSa, to_wall: float, traffic: Callable[[bytes], dict] = lambda spi: {}
) -> dict[str, Any]:
    """One IKE SA; ``to_wall`` converts the core's monotonic times to Unix time and
    ``traffic(spi_in)`` gives a CHILD SA's data plane counters."""
    return {
        "connection": sa.name,
        "state": sa.state.name,
        "initiator": sa.initiator,
        "local": _host(sa.local),
        "remote": _host(sa.remote),
        "local_id": str(sa.local_identity) if sa.local_identity else None,
        "remote_id": str(sa.remote_identity) if sa.remote_identity else None,
        "spi_i": sa.spi_i.hex(),
        "spi_r": sa.spi_r.hex(),
        "proposal": str(sa.suite) if sa.suite else None,
        "established": None if sa.established_at is None else sa.established_at + to_wall,
        "rekey_at": None if sa.ike_rekey_at is None else sa.ike_rekey_at + to_wall,
        "reauth_at": None if sa.ike_reauth_at is None else sa.ike_reauth_at + to_wall,
        "expires_at": None if sa.ike_expires_at is None else sa.ike_expires_at + to_wall,
        "nat_local": sa.nat_local,
        "nat_remote": sa.nat_remote,
        "liveness": {
            "state": sa.liveness.value,
            "last_inbound": sa.last_inbound + to_wall,
            "srtt": sa.rtt.srtt,
            "rto": sa.rtt.rto,
            "probes_sent": sa.probes_sent,
            "probes_unanswered": sa.probes_unanswered,
        },
        "children": [
            {
                "name": child.name,
                "state": "INSTALLED",
                "spi_in": child.spi_in.hex(),
                "spi_out": child.spi_out.hex(),
                "mode": child.mode.name,
                "proposal": str(child.suite),
                "local_ts": [str(ts) for ts in child.local_ts],
                "remote_ts": [str(ts) for ts in child.remote_ts],
                "installed": child.installed_at + to_wall,
                **_child_limits(sa, child.spi_in, to_wall),
                "udp_encap": sa.nat_local or sa.nat_remote,
                **traffic(child.spi_in),
            }
            for child in sa.children
        ],
    }
