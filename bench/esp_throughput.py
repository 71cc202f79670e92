"""iperf3 TCP throughput and ping latency through the tunnel, ikepulse against strongSwan,
in one run.

    sudo .venv/bin/python bench/esp_throughput.py [--seconds 10]

Site host to site host (203.0.113.2 -> 203.0.113.66) through: strongSwan<->strongSwan
(both kernel-libipsec), ikepulse<->strongSwan, ikepulse<->ikepulse (daemon defaults, and
with ``offload = true``), and the bare veth between the gateways. Prints Mbit/s
for each, the ratios against strongSwan<->strongSwan, and the ping RTT idle and under the
iperf3 load; writes bench/results/esp_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ikepulse.testing.lab import Lab, ikepulse_conf, lab_unavailable, run, swanctl_conf
from results_file import write_results

ESP = "aes256gcm16"
IKE = "aes256gcm16-prfsha256-x25519"


PING_INTERVAL = 0.1


def rtt(client, address: str, count: int) -> float | None:
    """Median ping round trip in ms (None when no reply came back)."""
    out = client.run(
        "ping", "-n", "-c", str(count), "-i", str(PING_INTERVAL), "-W", "1", address, check=False
    ).stdout
    times = [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]
    return round(statistics.median(times), 3) if times else None


def cpu_seconds(namespaces) -> float:
    """User and system CPU of the processes in ``namespaces`` (the gateways' daemons)."""
    total = 0.0
    for ns in namespaces:
        for pid in run("ip", "netns", "pids", ns.name, check=False).stdout.split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def iperf(lab: Lab, client, server, address: str, seconds: float, gateways=()) -> dict:
    """Mbit/s of one iperf3 run, with the RTT idle before it and during it, and the CPU
    seconds the gateways' processes spent per GB (robust when other work shares the CPUs)."""
    idle = rtt(client, address, 20)
    cpu = cpu_seconds(gateways)
    srv = server.popen(["iperf3", "-s", "-1", "-B", address], lab.workdir / "iperf-server.log")
    time.sleep(0.5)
    log = lab.workdir / "iperf-client.json"
    try:
        cli = client.popen(["iperf3", "-c", address, "-t", str(seconds), "-J"], log)
        time.sleep(min(1.0, seconds / 4))  # past slow start
        loaded = rtt(client, address, max(1, int((seconds - 2) / PING_INTERVAL)))
        cli.wait(seconds + 30)
    finally:
        srv.wait(10)
    cpu = cpu_seconds(gateways) - cpu
    received = json.loads(log.read_text())["end"]["sum_received"]
    mbit = received["bits_per_second"] / 1e6
    per_gb = round(cpu / (received["bytes"] / 1e9), 2) if gateways else None
    return {
        "mbit_per_s": round(mbit, 1),
        "rtt_idle_ms": idle,
        "rtt_loaded_ms": loaded,
        "gateway_cpu_s_per_gb": per_gb,
    }


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


def left_ikepulse(lab: Lab, daemon_lines: str = ""):
    daemon = lab.ikepulse(lab.left)
    daemon.start(
        daemon_lines
        + ikepulse_conf(
            local_addr=lab.left_addr, remote_addr=lab.right_addr, proposals=IKE, esp_proposals=ESP
        )
    )
    daemon.cli("up", "lab")


def right_ikepulse(lab: Lab, daemon_lines: str = ""):
    daemon = lab.ikepulse(lab.right, "ikepulse-right")
    daemon.start(
        daemon_lines
        + ikepulse_conf(
            side="right",
            local_addr=lab.right_addr,
            remote_addr=lab.left_addr,
            proposals=IKE,
            esp_proposals=ESP,
        )
    )


def right_ikepulse_offload(lab: Lab):
    right_ikepulse(lab, "offload = true\n")


def left_ikepulse_offload(lab: Lab):
    left_ikepulse(lab, "offload = true\n")


SETUPS = {
    "strongswan<->strongswan": (right_charon, left_charon),
    "ikepulse<->strongswan": (right_charon, left_ikepulse),
    "ikepulse<->ikepulse": (right_ikepulse, left_ikepulse),
    "ikepulse<->ikepulse offload on": (right_ikepulse_offload, left_ikepulse_offload),
    "bare link": None,
}


KEYS = ("rtt_idle_ms", "rtt_loaded_ms", "gateway_cpu_s_per_gb")


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def measure(name: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-bench-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            if SETUPS[name] is None:
                return iperf(lab, lab.left, lab.right, lab.right_addr, seconds)
            responder, initiator = SETUPS[name]
            responder(lab)
            initiator(lab)
            gateways = (lab.left, lab.right)
            return iperf(lab, lab.left_site, lab.right_site, "203.0.113.66", seconds, gateways)
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=list(SETUPS), action="append")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each; medians reported")
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"esp_throughput: the lab {reason}")
    runs: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):  # interleaved, so a busy moment hits every setup alike
        for name in args.only or SETUPS:
            try:
                run = measure(name, args.seconds)
            except (RuntimeError, subprocess.SubprocessError, KeyError, ValueError, OSError) as exc:
                print(f"{name:32s} failed: {exc}")
                continue
            runs.setdefault(name, []).append(run)
            print(
                f"{round_ + 1}: {name:32s} {run['mbit_per_s']:8.1f} Mbit/s   ping "
                f"{run['rtt_idle_ms']} ms idle, {run['rtt_loaded_ms']} ms under load, "
                f"gateways {run['gateway_cpu_s_per_gb']} CPU s/GB",
                flush=True,
            )
    results = {name: median(r["mbit_per_s"] for r in rs) for name, rs in runs.items()}
    latency = {name: {key: median(r[key] for r in rs) for key in KEYS} for name, rs in runs.items()}
    for name, mbit in results.items():
        print(f"median {name:32s} {mbit:8.1f} Mbit/s   {latency[name]}")
    theirs = results.get("strongswan<->strongswan")
    ratios = {
        name: round(results[name] / theirs, 2)
        for name in results
        if theirs and name.startswith("ikepulse")
    }
    for name, value in ratios.items():
        print(f"ratio {name} / strongswan<->strongswan: {value}")
    print("targets: ikepulse<->ikepulse >= 2.0 (offload on both: super-packets whole in ESP),")
    print("         ikepulse<->strongswan >= 1.0")
    write_results(
        "esp_throughput",
        {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "esp": ESP,
            "ping_interval": PING_INTERVAL,
        },
        mbit_per_s=results,
        ratios=ratios,
        ratio=ratios.get("ikepulse<->ikepulse"),
        ratio_offload=ratios.get("ikepulse<->ikepulse offload on"),
        ping_rtt_ms={
            n: {k: v for k, v in d.items() if k.startswith("rtt")} for n, d in latency.items()
        },
        gateway_cpu_s_per_gb={n: d["gateway_cpu_s_per_gb"] for n, d in latency.items()},
    )


if __name__ == "__main__":
    main()
