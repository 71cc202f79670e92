"""``ikepulse status`` as text, laid out like ``swanctl --list-sas``.

The daemon writes it itself (``{"command": "status", "format": "text"}``, runtime/control.py):
at 10,000 tunnels the JSON answer is 14 MB that the CLI would otherwise decode only to
format. Written for speed: one clock reading, one string per SA, no helper call per field
(the line-by-line version took twice as long)."""

from __future__ import annotations

import time


def ago(then: float | None, now: float | None = None) -> str:
    """``12s ago`` (``-`` for never); ``now`` defaults to the clock."""
    if then is None:
        return "-"
    return f"{max(0, int((time.time() if now is None else now) - then))}s ago"


def _in(sa: dict, now: float, names: tuple[tuple[str, str], ...]) -> str:
    """``, rekeying in 13979s, expires in 15821s`` as swanctl --list-sas shows it."""
    out = ""
    for key, label in names:
        at = sa.get(key)
        if at is not None:
            out += f", {label} in {max(0, int(at - now))}s"
    return out


_IKE_RENEWALS = (("rekey_at", "rekeying"), ("reauth_at", "reauth"), ("expires_at", "expires"))
_CHILD_RENEWALS = (("rekey_at", "rekeying"), ("expires_at", "expires"))


def _liveness(live: dict, now: float) -> str:
    """``  liveness suspect (ESP went out and nothing came back), rtt 1.2ms, last inbound 0s
    ago, last answer 4s ago`` and a newline."""
    cause = live.get("cause")
    srtt = live["srtt"]
    inbound, answer = live["last_inbound"], live["last_answer"]
    return (
        f"  liveness {live['state']}{f' ({cause})' if cause else ''}"
        f"{'' if srtt is None else f', rtt {srtt * 1000:.1f}ms'}"
        f", last inbound {'-' if inbound is None else f'{max(0, int(now - inbound))}s ago'}"
        f", last answer {'-' if answer is None else f'{max(0, int(now - answer))}s ago'}\n"
    )


def _traffic(child: dict, key: str, now: float) -> str:
    """``, 123 bytes, 4 packets, last 2s ago`` for one direction (``in`` or ``out``)."""
    out = ""
    if f"bytes_{key}" in child:
        out = f", {child[f'bytes_{key}']:6d} bytes, {child[f'packets_{key}']:5d} packets"
    last = child.get(f"last_{key}bound")
    if last:
        out += f", last {max(0, int(now - last))}s ago"
    return out


def _child(child: dict, now: float) -> str:
    installed = child["installed"]
    volume = ""
    for key, unit in (("rekey_bytes", "bytes"), ("rekey_packets", "packets")):
        if child.get(key) is not None:
            volume += f", rekeying after {child[key]:.0f} {unit}"
    return (
        f"  {child['name']}: {child['state']}, {child['mode']}"
        f"{'-in-UDP' if child['udp_encap'] else ''}, ESP:{child['proposal']}\n"
        f"    installed {'-' if installed is None else f'{max(0, int(now - installed))}s ago'}"
        f"{_in(child, now, _CHILD_RENEWALS)}{volume}\n"
        f"    in  {child['spi_in']}{_traffic(child, 'in', now)}\n"
        f"    out {child['spi_out']}{_traffic(child, 'out', now)}\n"
        f"    local  {' '.join(child['local_ts'])}\n"
        f"    remote {' '.join(child['remote_ts'])}\n"
    )


def _ike_sa(sa: dict, now: float) -> str:
    initiator = sa["initiator"]
    local, remote = sa["local"], sa["remote"]
    established = sa["established"]
    proposal = f"  {sa['proposal']}\n" if sa["proposal"] else ""
    text = (
        f"{sa['connection'] or '?'}: {sa['state']}, IKEv{sa.get('version', 2)}, "
        f"{sa['spi_i']}_i{'*' if initiator else ''} {sa['spi_r']}_r{'' if initiator else '*'}\n"
        f"  local  '{sa['local_id'] or ''}' @ {local['host']}[{local['port']}]"
        f"{' (behind NAT)' if sa['nat_local'] else ''}\n"
        f"  remote '{sa['remote_id'] or ''}' @ {remote['host']}[{remote['port']}]"
        f"{' (behind NAT)' if sa['nat_remote'] else ''}\n"
        f"{proposal}"
        f"  established {'-' if established is None else f'{max(0, int(now - established))}s ago'}"
        f"{_in(sa, now, _IKE_RENEWALS)}\n"
    )
    if sa["state"] == "ESTABLISHED":
        text += _liveness(sa["liveness"], now)
    cert = sa.get("peer_certificate")
    if cert:
        expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cert["not_after"]))
        text += f"  peer certificate '{cert['subject']}', expires {expiry}\n"
    return text + "".join([_child(child, now) for child in sa["children"]])


def format_status(ike_sas: list[dict], now: float | None = None) -> str:
    """Every IKE SA of a ``status`` answer (core/status.py), times shown relative to
    ``now`` (Unix time; default: the clock)."""
    if not ike_sas:
        return "no IKE SAs"
    at = time.time() if now is None else now
    return "".join([_ike_sa(sa, at) for sa in ike_sas])[:-1]
