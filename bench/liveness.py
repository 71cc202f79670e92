"""Dead-peer detection and restore times: ikepulse against strongSwan, same lab, same run.

    sudo .venv/bin/python bench/liveness.py [--dpd-delay 2] [--tuned-strongswan]

The peer on the right is always strongSwan. The detecting side on the left is ikepulse
(dpd_delay, dpd_timeout 3s, dpd_action restart) or strongSwan (same dpd_delay,
dpd_action restart, its retransmission settings: default 4 s x 1.8^n, 5 tries, or with
--tuned-strongswan timeout 0.5 s, base 1.5, 3 tries).

detection: the right gateway is blackholed; seconds until the left declares it dead.
restore:   the right charon is killed (SIGKILL) and started again at once; seconds until a
           ping from the left site host gets through the tunnel again.
Writes bench/results/liveness.json.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ikepulse.testing.lab import (
    Lab,
    ikepulse_conf,
    lab_unavailable,
    swanctl_conf,
    wait_for,
)
from results_file import write_results

GIVE_UP = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) .*giving up after \d+ retransmits")


def responder(lab: Lab):
    charon = lab.charon(lab.right)
    conf = swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr)
    charon.start(conf)
    return charon, conf


def left_ikepulse(lab: Lab, dpd_delay: float):
    daemon = lab.ikepulse(lab.left)
    extra = f'dpd_delay = "{dpd_delay}s"\ndpd_timeout = "3s"\ndpd_action = "restart"\n'
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=extra))
    daemon.cli("up", "lab")
    return daemon


def left_charon(lab: Lab, dpd_delay: float, tuned: bool):
    charon = lab.charon(lab.left, "charon-left")
    options = (
        "retransmit_timeout = 0.5\n  retransmit_base = 1.5\n  retransmit_tries = 3" if tuned else ""
    )
    charon.start(
        swanctl_conf(
            side="left",
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            extra=f"dpd_delay = {dpd_delay:g}s",
            child_extra="dpd_action = restart",
        ),
        charon_options=options,
    )
    charon.swanctl("--initiate", "--child", "lan")
    return charon


def _log_time(line_time: str, day: datetime) -> float:
    stamp = datetime.strptime(line_time, "%H:%M:%S.%f").replace(
        year=day.year, month=day.month, day=day.day
    )
    return stamp.timestamp()


def detection(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float:
    with tempfile.TemporaryDirectory(prefix="ikepulse-bench-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            responder(lab)
            if kind == "ikepulse":
                daemon = left_ikepulse(lab, dpd_delay)
            else:
                charon = left_charon(lab, dpd_delay, tuned)
            time.sleep(0.5)
            blackholed = time.time()
            lab.blackhole(lab.right)
            if kind == "ikepulse":

                def verdict():
                    status = json.loads(daemon.cli("status", "--json").stdout)
                    return status["connections"][0]["last_death"]

                wait_for(verdict, limit, "ikepulse's verdict", interval=0.05)
                return time.time() - blackholed
            day = datetime.now()

            def given_up():
                for line in charon.log.read_text().splitlines():
                    match = GIVE_UP.match(line)
                    if match:
                        return _log_time(match.group(1), day)
                return None

            return wait_for(given_up, limit, "strongSwan's verdict", interval=0.2) - blackholed
        finally:
            lab.down()


def restore(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float:
    with tempfile.TemporaryDirectory(prefix="ikepulse-bench-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            peer, conf = responder(lab)
            if kind == "ikepulse":
                left_ikepulse(lab, dpd_delay)
            else:
                left_charon(lab, dpd_delay, tuned)
            time.sleep(0.5)
            crashed = time.time()
            peer.stop(signal.SIGKILL)
            peer.start(conf)

            def ping_ok():
                result = lab.left_site.run(
                    "ping", "-c", "1", "-W", "0.2", "203.0.113.66", check=False
                )
                return result.returncode == 0

            wait_for(ping_ok, limit, "traffic through the tunnel", interval=0.1)
            return time.time() - crashed
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dpd-delay", type=float, default=2.0)
    parser.add_argument("--tuned-strongswan", action="store_true")
    parser.add_argument("--limit", type=float, default=400.0, help="give up after seconds")
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"liveness bench: the lab {reason}")
    results: dict[str, dict[str, float]] = {}
    for kind in ("ikepulse", "strongswan"):
        results[kind] = {}
        for name, measure in (("detection_s", detection), ("restore_s", restore)):
            value = measure(kind, args.dpd_delay, args.tuned_strongswan, args.limit)
            results[kind][name] = round(value, 2)
            print(f"{kind:10s} {name:12s} {value:8.2f} s", flush=True)
    ratios = {
        name: round(results["strongswan"][name] / results["ikepulse"][name], 1)
        for name in ("detection_s", "restore_s")
    }
    print(
        f"strongSwan / ikepulse: detection {ratios['detection_s']}x, "
        f"restore {ratios['restore_s']}x (dpd_delay = {args.dpd_delay:g}s)"
    )
    retransmit = (
        "tuned 0.5s x 1.5^n, 3 tries" if args.tuned_strongswan else "default 4s x 1.8^n, 5 tries"
    )
    write_results(
        "liveness_tuned" if args.tuned_strongswan else "liveness",
        {
            "dpd_delay": args.dpd_delay,
            "ikepulse_dpd_timeout": 3.0,
            "strongswan_retransmit": retransmit,
        },
        results=results,
        ratios=ratios,
    )


if __name__ == "__main__":
    main()
