"""N tunnels between two gateways in the lab: ikepulse <-> ikepulse, and as the anchor
strongSwan <-> strongSwan (charon with kernel-libipsec) and ikepulse <-> strongSwan in the
same run.

    sudo .venv/bin/python bench/scale.py [--tunnels 1000] [--window 32] [--initiation up]
                                         [--seconds 60] [--with-strongswan]
                                         [--strongswan-tunnels 1000] [--limit 600]
                                         [--output scale]

bench/results/scale.json holds the 1,000-tunnel run with strongSwan, scale_10000.json
the 10,000-tunnel run (``--tunnels 10000 --limit 400 --output scale_10000``).

Tunnel i is its own connection t{i} (identities t{i}.left / t{i}.right, one CHILD SA
between 2001:db8:10::{i+1:x} and 2001:db8:20::{i+1:x}; ikepulse/testing/scale_lab.py).
With --with-strongswan, charon <-> charon (the anchor) and ikepulse <-> charon run with
distinct IPv4 /32 host pairs instead (kernel-libipsec refuses the IPv6 ones;
bench/scale_anchor.py). The left gateway sits behind a NAT (so NAT-T keepalives run),
dpd_delay 30s and dpd_timeout 15s on both sides, dpd_action restart on the left, clear on
the right.

setups:     IKE_SA + CHILD_SA setups per second, from the first initiation (start-up
            excluded) and from launching the left daemon (start-up included). ``up``
            initiation fires ``up`` requests on the control socket, --window in flight;
            ``start`` puts start_action = "start" on every connection. A setup is a
            connection's first CHILD SA; also CPU ms per setup on each side (steadier than
            the rate on a shared machine), and dead verdicts and UDP receive-buffer drops
            while the tunnels came up (an overloaded gateway misses its peer's probes).
memory:     RSS of each daemon after start-up and with N tunnels up: kB per tunnel.
status:     ``ikepulse status`` and ``status --json`` at N tunnels (the command, wall
            clock, interpreter start included) and the bare control request.
idle:       each daemon's CPU over --seconds with every tunnel idle (checks, keepalives),
            from dpd_delay after the last tunnel came up: by then every tunnel has made its
            first check (and the MOBIKE update behind the NAT that follows it).
detection:  10 % of the tunnels blackholed at once on the right (their IKE and ESP SPIs
            dropped by nftables): verdicts on the left within dpd_delay + dpd_timeout,
            verdicts on live tunnels (must be 0), and how restarts spread out.

Every phase is bounded (--limit seconds to come up; the detection budget + 20 s) and the
namespaces are removed. Writes bench/results/NAME.json (--output).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from ikepulse.testing.lab import IKEPULSE, SRC, Lab, lab_unavailable, wait_for
from ikepulse.testing.scale_lab import (
    Tail,
    add_hosts,
    blackhole_tunnels,
    control,
    ikepulse_tunnels,
    name,
    ping_tunnel,
    proc_stats,
    up_all,
)
from results_file import write_results
from scale_anchor import charon_pair, ikepulse_to_charon

DPD_DELAY, DPD_TIMEOUT = 30.0, 15.0
BUDGET = DPD_DELAY + DPD_TIMEOUT
NAT_PUBLIC = "198.51.100.1"
"""The left gateway's address as the right sees it (the NAT's outside address)."""
INSTALLED = re.compile(r"CHILD SA (t\d+)\{\w+\} installed, SPIs")
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
DEAD = re.compile(STAMP + r".*peer of (t\d+)\[[0-9a-f]+\] is dead .*detected ([\d.]+)s", re.M)
RESTORED = re.compile(STAMP + r".*tunnel (t\d+) restored after ([\d.]+)s \((\d+) attempt", re.M)
KEEP: str | None = None
"""A directory to keep the lab's files in (logs), for debugging (--keep)."""


def _log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _wait_distinct(log: Path, count: int, limit: float) -> tuple[float, int]:
    """When ``count`` distinct connections had installed a CHILD SA (monotonic), or the
    deadline; and how many had. Restarts install again and must not count twice."""
    deadline, tail, seen = time.monotonic() + limit, Tail(log), set()
    while True:
        seen.update(INSTALLED.findall(tail.read()))
        if len(seen) >= count or time.monotonic() > deadline:
            return time.monotonic(), len(seen)
        time.sleep(0.1)


def _count(log: Path, pattern: re.Pattern) -> int:
    return len(pattern.findall(log.read_text(errors="replace")))


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def _timed(*cmd: str) -> float:
    start = time.monotonic()
    subprocess.run(cmd, capture_output=True, check=True, timeout=120,
                   env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})  # fmt: skip
    return round(time.monotonic() - start, 3)


def _spread(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    values = sorted(values)
    return {
        "count": len(values),
        "min": round(values[0], 2),
        "median": round(statistics.median(values), 2),
        "p90": round(values[int(0.9 * (len(values) - 1))], 2),
        "max": round(values[-1], 2),
    }


def ikepulse_run(n: int, window: int, initiation: str, seconds: float, limit: float) -> dict:
    out: dict = {"tunnels": n, "initiation": initiation, "window": window}
    with tempfile.TemporaryDirectory(prefix="ikepulse-scale-") as tmp:
        lab = Lab(Path(KEEP or tmp), nat=True).up()
        try:
            left_liveness = (
                f'dpd_delay = "{DPD_DELAY:g}s"\ndpd_timeout = "{DPD_TIMEOUT:g}s"\n'
                'dpd_action = "restart"\n'
            )
            right = lab.ikepulse(lab.right)
            right.start(
                ikepulse_tunnels(n, side="right", local_addr=lab.right_addr,
                                 remote_addr=NAT_PUBLIC,
                                 liveness=left_liveness.replace("restart", "clear")),
                log_level="info", wait=limit,
            )  # fmt: skip
            left = lab.ikepulse(lab.left)
            start_action = "start" if initiation == "start" else "none"
            launched = time.monotonic()
            left.start(
                ikepulse_tunnels(n, side="left", local_addr=lab.left_addr,
                                 remote_addr=lab.right_addr, liveness=left_liveness,
                                 start_action=start_action),
                log_level="info", wait=limit,
            )  # fmt: skip
            ready = time.monotonic()
            out["startup_s"] = round(ready - launched, 2)
            before = proc_stats(left=left, right=right)
            fired = ready
            ups: list[list[dict]] = []
            if initiation == "up":
                names = [name(i) for i in range(n)]
                upper = threading.Thread(
                    target=lambda: ups.append(up_all(left.socket, names, window, timeout=limit))
                )
                upper.start()
            done, installed = _wait_distinct(left.log, n, limit)
            out["installed"] = installed
            out["setup_s"] = round(done - fired, 2)
            during = proc_stats(left=left, right=right)
            out["setup_cpu_ms_per_tunnel"] = {
                side: round(1000 * (during[side].cpu_s - before[side].cpu_s) / max(installed, 1), 2)
                for side in during
            }
            out["setups_per_s_excluding_startup"] = _rate(installed, done - fired)
            out["setups_per_s_including_startup"] = _rate(installed, done - launched)
            out["during_setup"] = {
                "dead_verdicts": {"left": _count(left.log, DEAD), "right": _count(right.log, DEAD)},
                "udp_rcvbuf_errors": {"left": lab.left.udp_receive_buffer_errors(),
                                      "right": lab.right.udp_receive_buffer_errors()},
            }  # fmt: skip
            if initiation == "up":
                upper.join()
                out["up_failures"] = sum(1 for a in ups[0] if not a.get("ok"))
            print(f"ikepulse: {installed}/{n} tunnels in {done - fired:.1f} s "
                  f"({out['setups_per_s_excluding_startup']}/s; "
                  f"{out['setups_per_s_including_startup']}/s with {out['startup_s']} s "
                  f"start-up; CPU ms per tunnel {out['setup_cpu_ms_per_tunnel']}; "
                  f"{out['during_setup']})", flush=True)  # fmt: skip
            if installed < n:
                out["gave_up"] = f"only {installed} of {n} tunnels within {limit:.0f} s"
                return out
            sample = random.Random(16).sample(range(n), min(10, n))
            add_hosts(lab, sample)
            out["pings_ok"] = f"{sum(ping_tunnel(lab, i) for i in sample)}/{len(sample)}"
            after = proc_stats(left=left, right=right)
            out["memory"] = {
                side: {
                    "rss_start_kib": before[side].rss_kib,
                    "rss_tunnels_kib": after[side].rss_kib,
                    "kib_per_tunnel": round((after[side].rss_kib - before[side].rss_kib) / n, 1),
                }
                for side in before
            }
            cli = (*IKEPULSE, "--socket", left.socket, "status")
            out["status_s"] = {
                "status": _timed("ip", "netns", "exec", lab.left.name, *cli),
                "status_json": _timed("ip", "netns", "exec", lab.left.name, *cli, "--json"),
                "control_request": _request_time(left.socket),
            }
            print(f"ikepulse: memory {out['memory']}; status {out['status_s']}", flush=True)
            time.sleep(max(0.0, done + DPD_DELAY - time.monotonic()))
            idle0 = proc_stats(left=left, right=right)
            time.sleep(seconds)
            idle1 = proc_stats(left=left, right=right)
            out["idle_cpu_percent"] = {
                side: round(100 * idle1[side].cpu_share_since(idle0[side]), 2) for side in idle0
            }
            out["idle_seconds"] = seconds
            print(f"ikepulse: idle CPU over {seconds:.0f} s {out['idle_cpu_percent']} %",
                  flush=True)  # fmt: skip
            out["detection"] = detection(lab, left, n)
            print(f"ikepulse: detection {out['detection']}", flush=True)
            return out
        finally:
            lab.down()


def _request_time(path: str) -> float:
    start = time.monotonic()
    control(path, {"command": "status"})
    return round(time.monotonic() - start, 3)


def detection(lab: Lab, left, n: int) -> dict:
    """Blackhole 10 % of the tunnels at once; verdicts, wrong verdicts and restarts."""
    sas = left.status()
    dead = set(random.Random(61).sample(sorted(sa["connection"] for sa in sas), max(1, n // 10)))
    tail, text = Tail(left.log, from_end=True), []
    blackholed = time.time()
    blackhole_tunnels(lab, lab.right, [sa for sa in sas if sa["connection"] in dead])
    deaths: dict[str, tuple[float, float]] = {}

    def verdicts() -> bool:
        text.append(new := tail.read())
        for match in DEAD.finditer(new):
            at = _log_time(match[1])
            if at >= blackholed and match[2] not in deaths:
                deaths[match[2]] = (at, float(match[3]))
        return len(dead & set(deaths)) == len(dead)

    try:
        wait_for(verdicts, BUDGET + 10, "the verdicts", interval=0.5)
    except TimeoutError:
        pass
    time.sleep(10)  # restarts, and any wrong verdict, show up here
    verdicts()
    restores = {}
    for match in RESTORED.finditer("".join(text)):
        if _log_time(match[1]) >= blackholed:
            restores[match[2]] = (_log_time(match[1]), float(match[3]), int(match[4]))
    found = [deaths[c][0] - blackholed for c in dead if c in deaths]
    return {
        "blackholed": len(dead),
        "budget_s": BUDGET,
        "detected": len(found),
        "within_budget": sum(1 for t in found if t <= BUDGET + 1.0),
        "wrong_verdicts": len(set(deaths) - dead),
        "seconds_after_blackhole": _spread(found),
        "detected_after_s": _spread([deaths[c][1] for c in dead if c in deaths]),
        "restored": len(set(restores) & dead),
        "restored_at_s": _spread([restores[c][0] - blackholed for c in dead if c in restores]),
        "restore_attempts": _spread([restores[c][2] for c in dead if c in restores]),
    }


def _ratio(ours, theirs) -> float | None:
    return round(ours / theirs, 2) if ours and theirs else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tunnels", type=int, default=1000)
    parser.add_argument("--window", type=int, default=32, help="up requests in flight")
    parser.add_argument("--initiation", choices=("up", "start"), default="up")
    parser.add_argument("--seconds", type=float, default=60.0, help="idle CPU window")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds to come up")
    parser.add_argument("--with-strongswan", action="store_true")
    parser.add_argument("--strongswan-tunnels", type=int, default=None)
    parser.add_argument(
        "--strongswan-only", action="store_true", help="only the strongSwan runs (no ikepulse pair)"
    )
    parser.add_argument("--output", default="scale", help="bench/results/NAME.json")
    parser.add_argument("--keep", help="keep the lab's files (logs) in this directory")
    args = parser.parse_args()
    global KEEP
    KEEP = args.keep
    if reason := lab_unavailable():
        raise SystemExit(f"cannot run: {reason}")
    load_before = os.getloadavg()[0]
    results = {}
    if not args.strongswan_only:
        results["ikepulse"] = ikepulse_run(args.tunnels, args.window, args.initiation,
                                           args.seconds, args.limit)  # fmt: skip
    ratios = {}
    if args.with_strongswan or args.strongswan_only:
        count = args.strongswan_tunnels or args.tunnels
        dpd = f"dpd_delay = {DPD_DELAY:g}s"
        liveness = f'dpd_delay = "{DPD_DELAY:g}s"\ndpd_timeout = "{DPD_TIMEOUT:g}s"\n'
        results["strongswan"] = theirs = charon_pair(
            count, dpd, args.seconds, args.limit, KEEP, settle=DPD_DELAY
        )
        results["ikepulse_to_strongswan"] = mixed = ikepulse_to_charon(
            count, liveness, dpd, args.window, args.limit, KEEP
        )
        ours = results.get("ikepulse", {})
        ratios = {
            "setups_per_s": _ratio(ours.get("setups_per_s_excluding_startup"),
                                   theirs.get("setups_per_s_excluding_startup")),
            "setups_per_s_ikepulse_to_strongswan": _ratio(
                mixed.get("setups_per_s_excluding_startup"),
                theirs.get("setups_per_s_excluding_startup")),
            "idle_cpu_left": _ratio(ours.get("idle_cpu_percent", {}).get("left"),
                                    theirs.get("idle_cpu_percent", {}).get("left")),
            "kib_per_tunnel_right": _ratio(
                ours.get("memory", {}).get("right", {}).get("kib_per_tunnel"),
                theirs.get("memory", {}).get("right", {}).get("kib_per_tunnel")),
        }  # fmt: skip
        print(f"against strongSwan<->strongSwan: {ratios}")
    meta = {"tunnels": args.tunnels, "window": args.window, "initiation": args.initiation,
            "seconds": args.seconds, "dpd_delay": DPD_DELAY, "dpd_timeout": DPD_TIMEOUT,
            "nat": True, "load_average_1m": [load_before, os.getloadavg()[0]]}  # fmt: skip
    write_results(args.output, meta, results=results, ratios=ratios)


if __name__ == "__main__":
    main()
