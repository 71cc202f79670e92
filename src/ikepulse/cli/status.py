"""``ikepulse status`` as text, laid out like ``swanctl --list-sas``."""

from __future__ import annotations

import time


def ago(then: float | None, now: float | None = None) -> str:
    """``12s ago`` (``-`` for never); ``now`` defaults to the clock."""
    if then is None:
        return "-"
    return f"{max(0, int((time.time() if now is None else now) - then))}s ago"


def _renewals(sa: dict, **names: str) -> str:
    """``, rekeying in 13979s, expires in 15821s`` as swanctl --list-sas shows it."""
    now = time.time()
    return "".join(
        f", {label} in {max(0, int(sa[key] - now))}s"
        for key, label in names.items()
        if sa.get(key) is not None
    )


def _liveness(live: dict) -> str:
    """``suspect (ESP went out and nothing came back), rtt 1.2ms, last inbound 0s ago,
    last answer 4s ago``."""
    state = live["state"] + (f" ({live['cause']})" if live.get("cause") else "")
    rtt = "" if live["srtt"] is None else f", rtt {live['srtt'] * 1000:.1f}ms"
    return (
        f"{state}{rtt}, last inbound {ago(live['last_inbound'])}, "
        f"last answer {ago(live['last_answer'])}"
    )


def format_status(ike_sas: list[dict]) -> str:
    if not ike_sas:
        return "no IKE SAs"
    lines = []
    for sa in ike_sas:
        mark_i, mark_r = ("*", "") if sa["initiator"] else ("", "*")
        lines.append(
            f"{sa['connection'] or '?'}: {sa['state']}, IKEv{sa.get('version', 2)}, "
            f"{sa['spi_i']}_i{mark_i} {sa['spi_r']}_r{mark_r}"
        )
        nat_l = " (behind NAT)" if sa["nat_local"] else ""
        nat_r = " (behind NAT)" if sa["nat_remote"] else ""
        lines.append(
            f"  local  '{sa['local_id'] or ''}' @ {sa['local']['host']}"
            f"[{sa['local']['port']}]{nat_l}"
        )
        lines.append(
            f"  remote '{sa['remote_id'] or ''}' @ {sa['remote']['host']}"
            f"[{sa['remote']['port']}]{nat_r}"
        )
        if sa["proposal"]:
            lines.append(f"  {sa['proposal']}")
        renewals = _renewals(sa, rekey_at="rekeying", reauth_at="reauth", expires_at="expires")
        lines.append(f"  established {ago(sa['established'])}{renewals}")
        if sa["state"] == "ESTABLISHED":
            lines.append(f"  liveness {_liveness(sa['liveness'])}")
        cert = sa.get("peer_certificate")
        if cert:
            expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cert["not_after"]))
            lines.append(f"  peer certificate '{cert['subject']}', expires {expiry}")
        for child in sa["children"]:
            encap = "-in-UDP" if child["udp_encap"] else ""
            lines.append(
                f"  {child['name']}: {child['state']}, {child['mode']}{encap}, "
                f"ESP:{child['proposal']}"
            )
            renewals = _renewals(child, rekey_at="rekeying", expires_at="expires")
            volume = "".join(
                f", {label} after {child[key]:.0f} {unit}"
                for key, label, unit in (
                    ("rekey_bytes", "rekeying", "bytes"),
                    ("rekey_packets", "rekeying", "packets"),
                )
                if child.get(key) is not None
            )
            lines.append(f"    installed {ago(child['installed'])}{renewals}{volume}")
            for direction, key in (("in ", "in"), ("out", "out")):
                traffic = ""
                if f"bytes_{key}" in child:
                    traffic = (
                        f", {child[f'bytes_{key}']:6d} bytes, {child[f'packets_{key}']:5d} packets"
                    )
                if child.get(f"last_{key}bound"):
                    traffic += f", last {ago(child[f'last_{key}bound'])}"
                lines.append(f"    {direction} {child[f'spi_{key}']}{traffic}")
            lines.append(f"    local  {' '.join(child['local_ts'])}")
            lines.append(f"    remote {' '.join(child['remote_ts'])}")
    return "\n".join(lines)
