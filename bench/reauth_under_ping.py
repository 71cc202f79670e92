"""Pings lost while strongSwan reauthenticates make-before-break, ikepulse answering it or,
as the baseline, another strongSwan.

    sudo .venv/bin/python bench/reauth_under_ping.py [--reauths 30] [--runs 2]

The right gateway (strongSwan, make_before_break = yes) reauthenticates the IKE SA every
0.6 s (``swanctl --rekey --ike --reauth``): a new IKE SA and CHILD SA, then the old ones are
deleted. The left gateway answers: ikepulse, then strongSwan. A ping from the left site to the
right one at 500 packets/s runs throughout, so a gap of even a millisecond between the two
gateways' SAs shows. Prints the pings sent and lost per run; writes
bench/results/reauth_under_ping.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ikepulse.testing.lab import Lab, lab_unavailable, swanctl_conf
from rekey_under_load import LEFTS
from results_file import write_results

PING_INTERVAL = 0.002
REAUTH_EVERY = 0.6


def run(left: str, reauths: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-reauth-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            right = lab.charon(lab.right)
            right.start(
                swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr),
                "make_before_break = yes",
            )
            LEFTS[left](lab, False)
            count = int((reauths * REAUTH_EVERY + 1) / PING_INTERVAL)
            ping = lab.left_site.popen(
                ["ping", "-q", "-i", str(PING_INTERVAL), "-c", str(count), "-W", "1",
                 "203.0.113.66"],
                lab.workdir / "ping.log",
            )  # fmt: skip
            time.sleep(0.5)
            for _ in range(reauths):
                right.swanctl("--rekey", "--ike", "lab", "--reauth")
                time.sleep(REAUTH_EVERY)
            ping.wait(60)
            summary = (lab.workdir / "ping.log").read_text().splitlines()[-2].split()
            sent, received = int(summary[0]), int(summary[3])
            return {"reauths": reauths, "pings_sent": sent, "pings_lost": sent - received}
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reauths", type=int, default=30, help="per run (default 30)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"reauth_under_ping: the lab {reason}")
    results: dict[str, list[dict]] = {}
    print(f"{'left gateway':12s} {'reauths':>7s} {'pings':>7s} {'lost':>5s}")
    for left in LEFTS:
        results[left] = []
        for _ in range(args.runs):
            figures = run(left, args.reauths)
            results[left].append(figures)
            print(
                f"{left:12s} {figures['reauths']:>7} {figures['pings_sent']:>7} "
                f"{figures['pings_lost']:>5}",
                flush=True,
            )
    lost = {left: sum(r["pings_lost"] for r in runs) for left, runs in results.items()}
    print(f"pings lost in all runs: ikepulse {lost['ikepulse']}, strongSwan {lost['strongswan']}")
    write_results("reauth_under_ping", {"reauths": args.reauths, "runs": args.runs}, **results)


if __name__ == "__main__":
    main()
