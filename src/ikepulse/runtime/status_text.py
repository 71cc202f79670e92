"""``ikepulse status`` as text, laid out like ``swanctl --list-sas``.

The daemon writes it itself (``{"command": "status", "format": "text"}``, runtime/control.py):
at 10,000 tunnels the JSON answer is 14 MB that the CLI would otherwise decode only to
format. Written for speed: one clock reading, one string per SA, few calls per field (the
line-by-line version took 1.8 times as long)."""

from __future__ import annotations

import time


def ago(then: float | None, now: float | None = None) -> str:
    """``12s ago`` (``-`` for never); ``now`` defaults to the clock."""
    if then is None:
        return "-"
    return f"{max(0, int((time.time() if now is None else now) - then))}s ago"


def _liveness(live: dict, now: float) -> str:
    """``  liveness suspect (ESP went out and nothing came back), rtt 1.2ms, last inbound 0s
    ago, last answer 4s ago`` and a newline."""
    cause, srtt = live.get("cause"), live["srtt"]
    return (
        f"  liveness {live['state']}{f' ({cause})' if cause else ''}"
        f"{'' if srtt is None else f', rtt {srtt * 1000:.1f}ms'}"
        f", last inbound {ago(live['last_inbound'], now)}"
        f", last answer {ago(live['last_answer'], now)}\n"
    )


def _due(what: str, at: float | None, now: float) -> str:
    """``, rekeying in 13979s`` (as swanctl --list-sas), or nothing."""
    return "" if at is None else f", {what} in {int(at - now) if at > now else 0}s"


def _last(last: float | None, now: float) -> str:
    return f", last {ago(last, now)}" if last else ""


def _child(child: dict, now: float) -> str:
    """A CHILD SA's six lines: state, lifetimes (as swanctl --list-sas: ``rekeying in
    13979s, expires in 15821s``), traffic each way, selectors."""
    get = child.get
    out = (
        f"  {child['name']}: {child['state']}, {child['mode']}"
        f"{'-in-UDP' if child['udp_encap'] else ''}, ESP:{child['proposal']}\n"
        f"    installed {ago(child['installed'], now)}"
    )
    out += _due("rekeying", get("rekey_at"), now) + _due("expires", get("expires_at"), now)
    volume = get("rekey_bytes")
    if volume is not None:
        out += f", rekeying after {volume:.0f} bytes"
    volume = get("rekey_packets")
    if volume is not None:
        out += f", rekeying after {volume:.0f} packets"
    out += f"\n    in  {child['spi_in']}"
    if "bytes_in" in child:
        out += f", {child['bytes_in']:6d} bytes, {child['packets_in']:5d} packets"
    out += _last(get("last_inbound"), now)
    out += f"\n    out {child['spi_out']}"
    if "bytes_out" in child:
        out += f", {child['bytes_out']:6d} bytes, {child['packets_out']:5d} packets"
    out += _last(get("last_outbound"), now)
    return (
        f"{out}\n    local  {' '.join(child['local_ts'])}\n"
        f"    remote {' '.join(child['remote_ts'])}\n"
    )


def _ike_sa(sa: dict, now: float) -> str:
    get = sa.get
    initiator = sa["initiator"]
    local, remote = sa["local"], sa["remote"]
    proposal = f"  {sa['proposal']}\n" if sa["proposal"] else ""
    text = (
        f"{sa['connection'] or '?'}: {sa['state']}, IKEv{get('version', 2)}, "
        f"{sa['spi_i']}_i{'*' if initiator else ''} {sa['spi_r']}_r{'' if initiator else '*'}\n"
        f"  local  '{sa['local_id'] or ''}' @ {local['host']}[{local['port']}]"
        f"{' (behind NAT)' if sa['nat_local'] else ''}\n"
        f"  remote '{sa['remote_id'] or ''}' @ {remote['host']}[{remote['port']}]"
        f"{' (behind NAT)' if sa['nat_remote'] else ''}\n"
        f"{proposal}  established {ago(sa['established'], now)}"
    )
    text += (
        _due("rekeying", get("rekey_at"), now)
        + _due("reauth", get("reauth_at"), now)
        + _due("expires", get("expires_at"), now)
        + "\n"
    )
    if sa["state"] == "ESTABLISHED":
        text += _liveness(sa["liveness"], now)
    cert = get("peer_certificate")
    if cert:
        expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cert["not_after"]))
        text += f"  peer certificate '{cert['subject']}', expires {expiry}\n"
    for child in sa["children"]:
        text += _child(child, now)
    return text


def format_status(ike_sas: list[dict], now: float | None = None) -> str:
    """Every IKE SA of a ``status`` answer (core/status.py), times shown relative to
    ``now`` (Unix time; default: the clock)."""
    if not ike_sas:
        return "no IKE SAs"
    at = time.time() if now is None else now
    return "".join([_ike_sa(sa, at) for sa in ike_sas])[:-1]
