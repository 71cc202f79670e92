"""1,000 CHILD SA rekeys against strongSwan under a steady ping, taking turns who initiates.

    sudo .venv/bin/python bench/rekey_soak.py [--count 1000] [--ike-every 100]

Odd rekeys are asked of ikepulse (control socket), even ones of strongSwan (vici); every
``--ike-every`` rekeys the IKE SA is rekeyed as well. A ping runs at 100 packets/s
throughout. Prints lost packets, duplicate SAs seen, and the time per rekey (request to the
new CHILD SA in ikepulse's status); writes bench/results/rekey_soak.json.
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import tempfile
import time
from pathlib import Path

from ikepulse.cli.client import request
from ikepulse.lab import Lab, ikepulse_conf, lab_unavailable, swanctl_conf, wait_for
from results_file import write_results


def vici_rekey(charon, what: dict) -> None:
    import vici

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(charon.uri[7:])
    try:
        vici.Session(sock).rekey(what)
    finally:
        sock.close()


def soak(count: int, ike_every: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-soak-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            charon = lab.charon(lab.right)
            charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr))
            daemon = lab.ikepulse(lab.left)
            daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
            daemon.cli("up", "lab")

            def status() -> dict:
                """The established IKE SA (an old one may linger in DELETING briefly)."""
                sas = request(daemon.socket, {"command": "status"})["ike_sas"]
                (sa,) = [s for s in sas if s["state"] == "ESTABLISHED"]
                return sa

            ping = lab.left_site.popen(
                ["ping", "-q", "-i", "0.01", "-W", "1", "203.0.113.66"], lab.workdir / "ping.log"
            )
            durations, duplicates, ike_rekeys = [], 0, 0
            for n in range(1, count + 1):
                before = status()["children"][0]["spi_in"]
                started = time.monotonic()
                if n % 2:
                    request(daemon.socket, {"command": "rekey", "connection": "lab"})
                else:
                    vici_rekey(charon, {"child": "lan"})

                def rekeyed(before=before):
                    children = status()["children"]
                    return len(children) == 1 and children[0]["spi_in"] != before

                wait_for(rekeyed, 10, f"rekey {n}", interval=0.002)
                durations.append(time.monotonic() - started)
                if ike_every and n % ike_every == 0:
                    spi = status()["spi_i"]
                    request(daemon.socket, {"command": "rekey", "connection": "lab", "ike": True})
                    wait_for(
                        lambda spi=spi: status()["spi_i"] != spi, 10, "IKE rekey", interval=0.002
                    )
                    ike_rekeys += 1
                if n % 50 == 0:
                    theirs = [
                        c
                        for sa in charon.list_sas()
                        for c in sa["children"]
                        if c["state"] == "INSTALLED"
                    ]
                    duplicates += max(0, len(theirs) - 1) + max(0, len(status()["children"]) - 1)
            time.sleep(1)
            ping.send_signal(signal.SIGINT)
            ping.wait(10)
            summary = (lab.workdir / "ping.log").read_text()
            sent = int(summary.split(" packets transmitted")[0].split()[-1])
            received = int(summary.split(" received")[0].split()[-1])
            return {
                "rekeys": count,
                "ike_rekeys": ike_rekeys,
                "pings_sent": sent,
                "pings_lost": sent - received,
                "duplicate_sas_seen": duplicates,
                "ms_per_rekey_median": round(statistics.median(durations) * 1000, 2),
                "ms_per_rekey_p99": round(
                    sorted(durations)[int(len(durations) * 0.99) - 1] * 1000, 2
                ),
            }
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--ike-every", type=int, default=100)
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"rekey_soak: the lab {reason}")
    result = soak(args.count, args.ike_every)
    for key, value in result.items():
        print(f"{key:22s} {value}")
    write_results("rekey_soak", {"count": args.count, "ike_every": args.ike_every}, **result)


if __name__ == "__main__":
    main()
