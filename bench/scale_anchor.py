"""The strongSwan side of ``bench/scale.py``: charon <-> charon (the anchor) and ikepulse
<-> charon, N tunnels each, same lab and same run.

kernel-libipsec answers TS_UNACCEPTABLE for the IPv6 /128 selectors of the ikepulse pair
(it cannot install their routes), so these runs use distinct IPv4 /32 host pairs
(``family=4`` in ikepulse/testing/scale_lab.py). The left sits behind the NAT as in the
ikepulse pair; charon on the right is the responder.
"""

from __future__ import annotations

import re
import socket
import tempfile
import time
from pathlib import Path

import vici

from ikepulse.testing.lab import Lab
from ikepulse.testing.scale_lab import (
    Tail,
    add_hosts,
    ikepulse_tunnels,
    name,
    proc_stats,
    swanctl_tunnels,
    up_all,
)

CHARON_OPTIONS = ""
"""kernel-libipsec routes every policy into its TUN device, with a source address from the
local selector: without such an address on the host it fails the CHILD SA (TS_UNACCEPTABLE),
even with ``install_routes = no``. So the runs put every selector address on ``lo`` first
(few: the IPv4 pairs reuse 128 left and N/128 right hosts)."""
RESPONDER_OPTIONS = (
    CHARON_OPTIONS
    + "\n  cookie_threshold = 100000\n  cookie_threshold_ip = 100000\n  block_threshold = 100000"
)


def _vici(uri: str) -> tuple[socket.socket, vici.Session]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(uri[7:])
    return sock, vici.Session(sock)


def _established(uri: str) -> int:
    """IKE SAs with an installed CHILD SA in this charon."""
    sock, session = _vici(uri)
    try:
        return sum(
            1
            for entry in session.list_sas()
            for sa in entry.values()
            if sa["state"] == b"ESTABLISHED"
            and any(c["state"] == b"INSTALLED" for c in sa.get("child-sas", {}).values())
        )
    finally:
        sock.close()


CHILD_UP = re.compile(r"CHILD_SA net\{\d+\} established")


def _wait_established(charon, count: int, limit: float) -> tuple[float, int]:
    """When ``charon`` had logged ``count`` CHILD SAs (monotonic), or the deadline; and how
    many IKE SAs are up with their CHILD SA then (vici). The log, read incrementally, and
    not ``list-sas`` every moment: that costs charon more than the setups at 1,000."""
    deadline, tail, seen = time.monotonic() + limit, Tail(charon.log), 0
    while seen < count and time.monotonic() < deadline:
        time.sleep(0.05)
        seen += len(CHILD_UP.findall(tail.read()))
    return time.monotonic(), _established(charon.uri)


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def _memory(before: dict, after: dict, n: int) -> dict:
    return {
        side: {
            "rss_start_kib": before[side].rss_kib,
            "rss_tunnels_kib": after[side].rss_kib,
            "kib_per_tunnel": round((after[side].rss_kib - before[side].rss_kib) / n, 1),
        }
        for side in before
    }


def _setups(
    out: dict, installed: int, n: int, seconds: float, with_startup: float, cpu: tuple
) -> None:
    """Setups per second, and CPU per setup from ``cpu`` = (before, after) samples of both
    sides (less sensitive than the rate to what else runs on the machine)."""
    before, after = cpu
    out["installed"] = installed
    out["setup_s"] = round(seconds, 2)
    out["setups_per_s_excluding_startup"] = _rate(installed, seconds)
    out["setups_per_s_including_startup"] = _rate(installed, with_startup)
    out["setup_cpu_ms_per_tunnel"] = {
        side: round(1000 * (after[side].cpu_s - before[side].cpu_s) / max(installed, 1), 2)
        for side in after
    }
    if installed < n:
        out["gave_up"] = f"only {installed} of {n} tunnels in time"


def _charon_responder(lab: Lab, n: int, dpd: str):
    """charon on the right answering ``n`` tunnels, their /32 addresses on both hosts."""
    add_hosts(lab, range(n), family=4)
    right = lab.charon(lab.right)
    right.start(swanctl_tunnels(n, side="right", local_addr=lab.right_addr,
                                remote_addr="%any", extra=dpd),
                RESPONDER_OPTIONS)  # fmt: skip
    return right


def charon_pair(
    n: int, dpd: str, seconds: float, limit: float, keep: str | None, settle: float
) -> dict:
    """charon <-> charon: setups/s, memory, ``--list-sas`` time, idle CPU (from ``settle``
    seconds after the last tunnel came up, as for ikepulse)."""
    out: dict = {"tunnels": n, "selectors": "IPv4 /32 pairs"}
    with tempfile.TemporaryDirectory(prefix="ikepulse-scale-ss-") as tmp:
        lab = Lab(Path(keep or tmp), nat=True).up()
        try:
            right = _charon_responder(lab, n, dpd)
            left = lab.charon(lab.left, "charon-left")
            launched = time.monotonic()
            left.start(swanctl_tunnels(n, side="left", local_addr=lab.left_addr,
                                       remote_addr=lab.right_addr, extra=dpd),
                       CHARON_OPTIONS)  # fmt: skip
            ready = time.monotonic()
            out["startup_s"] = round(ready - launched, 2)
            before = proc_stats(left=left, right=right)
            sock, session = _vici(left.uri)
            try:
                for i in range(n):
                    for _log in session.initiate({"ike": name(i), "child": "net", "timeout": -1}):
                        pass
            finally:
                sock.close()
            done, installed = _wait_established(left, n, limit)
            after = proc_stats(left=left, right=right)
            _setups(out, installed, n, done - ready, done - launched, (before, after))
            print(f"strongSwan<->strongSwan: {installed}/{n} tunnels in {done - ready:.1f} s "
                  f"({out['setups_per_s_excluding_startup']}/s; CPU ms per tunnel "
                  f"{out['setup_cpu_ms_per_tunnel']})", flush=True)  # fmt: skip
            if installed < n:  # no steady state to measure (as for ikepulse)
                return out
            out["memory"] = _memory(before, after, n)
            start = time.monotonic()
            left.swanctl("--list-sas", timeout=120)
            out["status_s"] = {"list_sas": round(time.monotonic() - start, 3)}
            time.sleep(max(0.0, done + settle - time.monotonic()))
            idle0 = proc_stats(left=left, right=right)
            time.sleep(seconds)
            idle1 = proc_stats(left=left, right=right)
            out["idle_cpu_percent"] = {
                side: round(100 * idle1[side].cpu_share_since(idle0[side]), 2) for side in idle0
            }
            print(f"strongSwan<->strongSwan: memory {out['memory']}; list-sas "
                  f"{out['status_s']}; idle CPU {out['idle_cpu_percent']} %",
                  flush=True)  # fmt: skip
            return out
        finally:
            lab.down()


def ikepulse_to_charon(
    n: int, liveness: str, dpd: str, window: int, limit: float, keep: str | None
) -> dict:
    """ikepulse (left, initiating with ``up``) <-> charon (right): setups/s and memory."""
    out: dict = {"tunnels": n, "selectors": "IPv4 /32 pairs", "window": window}
    with tempfile.TemporaryDirectory(prefix="ikepulse-scale-mixed-") as tmp:
        lab = Lab(Path(keep or tmp), nat=True).up()
        try:
            right = _charon_responder(lab, n, dpd)
            left = lab.ikepulse(lab.left)
            launched = time.monotonic()
            left.start(ikepulse_tunnels(n, side="left", local_addr=lab.left_addr,
                                        remote_addr=lab.right_addr, liveness=liveness,
                                        family=4),
                       log_level="info", wait=limit)  # fmt: skip
            ready = time.monotonic()
            out["startup_s"] = round(ready - launched, 2)
            before = proc_stats(left=left, right=right)
            answers = up_all(left.socket, [name(i) for i in range(n)], window, timeout=limit)
            out["up_failures"] = sum(1 for a in answers if not a.get("ok"))
            done = time.monotonic()
            after = proc_stats(left=left, right=right)
            installed = _established(right.uri)
            _setups(out, installed, n, done - ready, done - launched, (before, after))
            print(f"ikepulse->strongSwan: {installed}/{n} tunnels in {done - ready:.1f} s "
                  f"({out['setups_per_s_excluding_startup']}/s; CPU ms per tunnel "
                  f"{out['setup_cpu_ms_per_tunnel']})", flush=True)  # fmt: skip
            out["memory"] = _memory(before, after, n)
            return out
        finally:
            lab.down()
