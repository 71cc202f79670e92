"""iperf3 TCP throughput through the tunnel, ikepulse against strongSwan, in one run.

    sudo .venv/bin/python bench/esp_throughput.py [--seconds 10]

Site host to site host (203.0.113.2 -> 203.0.113.66) through: strongSwan<->strongSwan
(both kernel-libipsec), ikepulse<->strongSwan, ikepulse<->ikepulse, and the bare veth
between the gateways. Prints Mbit/s for each and the ratio ikepulse<->ikepulse /
strongSwan<->strongSwan; writes bench/results/esp_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from ikepulse.testing.lab import Lab, ikepulse_conf, lab_unavailable, swanctl_conf
from results_file import write_results

ESP = "aes256gcm16"
IKE = "aes256gcm16-prfsha256-x25519"


def iperf(lab: Lab, client, server, address: str, seconds: float) -> float:
    srv = server.popen(["iperf3", "-s", "-1", "-B", address], lab.workdir / "iperf-server.log")
    time.sleep(0.5)
    try:
        out = client.run(
            "iperf3", "-c", address, "-t", str(seconds), "-J", timeout=seconds + 30
        ).stdout
    finally:
        srv.wait(10)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def right_charon(lab: Lab):
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr, remote_addr=lab.left_addr, proposals=IKE, esp_proposals=ESP
        )
    )
    return charon


def left_charon(lab: Lab):
    charon = lab.charon(lab.left, "charon-left")
    charon.start(
        swanctl_conf(
            side="left",
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            proposals=IKE,
            esp_proposals=ESP,
        )
    )
    charon.swanctl("--initiate", "--child", "lan")


def left_ikepulse(lab: Lab):
    daemon = lab.ikepulse(lab.left)
    daemon.start(
        ikepulse_conf(
            local_addr=lab.left_addr, remote_addr=lab.right_addr, proposals=IKE, esp_proposals=ESP
        )
    )
    daemon.cli("up", "lab")


def right_ikepulse(lab: Lab):
    daemon = lab.ikepulse(lab.right, "ikepulse-right")
    daemon.start(
        ikepulse_conf(
            side="right",
            local_addr=lab.right_addr,
            remote_addr=lab.left_addr,
            proposals=IKE,
            esp_proposals=ESP,
        )
    )


SETUPS = {
    "strongswan<->strongswan": (right_charon, left_charon),
    "ikepulse<->strongswan": (right_charon, left_ikepulse),
    "ikepulse<->ikepulse": (right_ikepulse, left_ikepulse),
    "bare link": None,
}


def measure(name: str, seconds: float) -> float:
    with tempfile.TemporaryDirectory(prefix="ikepulse-bench-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            if SETUPS[name] is None:
                return iperf(lab, lab.left, lab.right, lab.right_addr, seconds)
            responder, initiator = SETUPS[name]
            responder(lab)
            initiator(lab)
            return iperf(lab, lab.left_site, lab.right_site, "203.0.113.66", seconds)
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=list(SETUPS), action="append")
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"esp_throughput: the lab {reason}")
    results = {}
    for name in args.only or SETUPS:
        try:
            results[name] = round(measure(name, args.seconds), 1)
        except (RuntimeError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            print(f"{name:26s} failed: {exc}")
            continue
        print(f"{name:26s} {results[name]:10.1f} Mbit/s", flush=True)
    ours, theirs = results.get("ikepulse<->ikepulse"), results.get("strongswan<->strongswan")
    ratio = round(ours / theirs, 2) if ours and theirs else None
    print(f"ratio ikepulse<->ikepulse / strongswan<->strongswan: {ratio} (target >= 1.5)")
    write_results(
        "esp_throughput", {"seconds": args.seconds, "esp": ESP}, mbit_per_s=results, ratio=ratio
    )


if __name__ == "__main__":
    main()
