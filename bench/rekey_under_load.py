"""Datagrams lost under a steady UDP stream, with and without rekeys every few seconds.

    sudo .venv/bin/python bench/rekey_under_load.py [--rate 50M] [--seconds 30] [--runs 2]

iperf3 sends UDP (1200-byte datagrams, so nothing is fragmented) from the left site to the
right site at ``--rate`` through the left gateway (ikepulse, then strongSwan for the
baseline) and strongSwan on the right. In "rekeys" runs both gateways rekey the CHILD SA
every 3-6 s (whichever draws the earlier time initiates); "steady" runs never rekey, so the
difference between the two is what rekeying costs. Prints the rekeys each side started, the
datagrams lost per run, and how many of them a full socket receive buffer dropped in each
gateway and in the receiving iperf3 (a process that did not keep up, not the tunnel); writes
bench/results/rekey_under_load.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ikepulse.testing.lab import Lab, ikepulse_conf, lab_unavailable, swanctl_conf
from results_file import write_results

LIFETIMES = {"rekey_time": 6, "rand_time": 3, "life_time": 30}
SWANCTL_LIFETIMES = "\n".join(f"{key} = {value}s" for key, value in LIFETIMES.items())
IKEPULSE_LIFETIMES = "\n".join(f'{key} = "{value}s"' for key, value in LIFETIMES.items())


def left_ikepulse(lab: Lab, rekeys: bool) -> None:
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    if rekeys:
        conf = conf.replace('mode = "tunnel"', f'mode = "tunnel"\n{IKEPULSE_LIFETIMES}')
    daemon.start(conf)
    daemon.cli("up", "lab")


def left_charon(lab: Lab, rekeys: bool) -> None:
    charon = lab.charon(lab.left, "left-charon")
    charon.start(
        swanctl_conf(
            side="left",
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            child_extra=SWANCTL_LIFETIMES if rekeys else "",
        )
    )
    charon.swanctl("--initiate", "--child", "lan")


LEFTS = {"ikepulse": left_ikepulse, "strongswan": left_charon}


def run(left: str, rekeys: bool, rate: str, seconds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-load-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            right = lab.charon(lab.right)
            right.start(
                swanctl_conf(
                    local_addr=lab.right_addr,
                    remote_addr=lab.left_addr,
                    child_extra=SWANCTL_LIFETIMES if rekeys else "",
                )
            )
            LEFTS[left](lab, rekeys)
            server = lab.right_site.popen(
                ["iperf3", "-s", "-1", "-B", "203.0.113.66", "-J"], lab.workdir / "server.json"
            )
            time.sleep(0.5)
            receivers = {"left": lab.left, "right": lab.right, "iperf3": lab.right_site}
            before = {name: ns.udp_receive_buffer_errors() for name, ns in receivers.items()}
            lab.left_site.run(
                "iperf3", "-u", "-l", "1200", "-b", rate, "-t", str(seconds),
                "-c", "203.0.113.66", timeout=seconds + 30,
            )  # fmt: skip
            server.wait(20)
            received = json.loads((lab.workdir / "server.json").read_text())["end"]["sum"]
            log = right.log.read_text()
            return {
                "rekeys_by_left": log.count("parsed CREATE_CHILD_SA request"),
                "rekeys_by_right": log.count("generating CREATE_CHILD_SA request"),
                "datagrams": received["packets"],
                "lost": received["lost_packets"],
                "full_buffer_drops": {
                    name: ns.udp_receive_buffer_errors() - before[name]
                    for name, ns in receivers.items()
                },
            }
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", default="50M", help="iperf3 -b (default 50M)")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"rekey_under_load: the lab {reason}")
    results: dict[str, list[dict]] = {}
    print(
        f"{'left gateway':12s} {'mode':7s} {'rekeys L+R':>10s} {'datagrams':>10s} {'lost':>6s}"
        "   full buffers: left right iperf3"
    )
    for left in LEFTS:
        for rekeys in (False, True):
            key = f"{left}/{'rekeys' if rekeys else 'steady'}"
            results[key] = []
            for _ in range(args.runs):
                figures = run(left, rekeys, args.rate, args.seconds)
                results[key].append(figures)
                print(
                    f"{left:12s} {key.split('/')[1]:7s} "
                    f"{figures['rekeys_by_left']:>6}+{figures['rekeys_by_right']:<3} "
                    f"{figures['datagrams']:>10} {figures['lost']:>6}                 "
                    + " ".join(f"{n:>5}" for n in figures["full_buffer_drops"].values()),
                    flush=True,
                )
    write_results(
        "rekey_under_load",
        {"rate": args.rate, "seconds": args.seconds, "runs": args.runs},
        **{key.replace("/", "_"): runs for key, runs in results.items()},
    )


if __name__ == "__main__":
    main()
