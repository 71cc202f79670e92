"""1,000 CHILD SA rekeys against strongSwan under a steady ping, taking turns who initiates;
then the same between two strongSwans, as the baseline.

    sudo .venv/bin/python bench/rekey_soak.py [--count 1000] [--ike-every 100]

Odd rekeys are asked of the left gateway (ikepulse through its control socket, or
strongSwan through vici), even ones of the right strongSwan; every
``--ike-every`` rekeys the IKE SA is rekeyed as well. A ping runs at 100 packets/s
throughout. Prints lost packets, duplicate SAs seen, and the time per rekey (request to the
new CHILD SA in the left gateway's status); writes bench/results/rekey_soak.json.
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
from ikepulse.testing.lab import Lab, ikepulse_conf, lab_unavailable, swanctl_conf, wait_for
from results_file import write_results


def vici_rekey(charon, what: dict) -> None:
    import vici

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(charon.uri[7:])
    try:
        vici.Session(sock).rekey(what)
    finally:
        sock.close()


class IkepulseLeft:
    """ikepulse as the left gateway: rekeys through its control socket."""

    name = "ikepulse"

    def __init__(self, lab: Lab) -> None:
        self.daemon = lab.ikepulse(lab.left)
        self.daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
        self.daemon.cli("up", "lab")

    def ike_sa(self) -> tuple[str, list[str]] | None:
        """The established IKE SA's SPI and its CHILD SAs' inbound SPIs; None amid a rekey."""
        sas = request(self.daemon.socket, {"command": "status"})["ike_sas"]
        established = [s for s in sas if s["state"] == "ESTABLISHED"]
        if len(established) != 1:
            return None
        return established[0]["spi_i"], [c["spi_in"] for c in established[0]["children"]]

    def rekey(self, ike: bool = False) -> None:
        request(self.daemon.socket, {"command": "rekey", "connection": "lab", "ike": ike})


class CharonLeft:
    """strongSwan as the left gateway, for the baseline measured in the same run."""

    name = "strongswan"

    def __init__(self, lab: Lab) -> None:
        self.charon = lab.charon(lab.left, "left-charon")
        self.charon.start(
            swanctl_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, side="left")
        )
        self.charon.swanctl("--initiate", "--child", "lan")

    def ike_sa(self) -> tuple[str, list[str]] | None:
        """The established IKE SA's SPI and its CHILD SAs' inbound SPIs; None amid a rekey."""
        established = [s for s in self.charon.list_sas() if s["state"] == "ESTABLISHED"]
        if len(established) != 1:
            return None
        children = [c["spi-in"] for c in established[0]["children"] if c["state"] == "INSTALLED"]
        return established[0]["initiator-spi"], children

    def rekey(self, ike: bool = False) -> None:
        vici_rekey(self.charon, {"ike": "lab"} if ike else {"child": "lan"})


def settled(left) -> tuple[str, list[str]]:
    """The left gateway's one established IKE SA (its SPI and CHILD SPIs), once no rekey is
    in between."""
    return wait_for(left.ike_sa, 10, "one IKE SA", interval=0.002)


def soak(left_kind, count: int, ike_every: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-soak-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            charon = lab.charon(lab.right)
            charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr))
            left = left_kind(lab)
            ping = lab.left_site.popen(
                ["ping", "-q", "-i", "0.01", "-W", "1", "203.0.113.66"], lab.workdir / "ping.log"
            )
            durations, duplicates, ike_rekeys = [], 0, 0
            for n in range(1, count + 1):
                (before,) = settled(left)[1]
                started = time.monotonic()
                if n % 2:
                    left.rekey()
                else:
                    vici_rekey(charon, {"child": "lan"})

                def rekeyed(before=before):
                    sa = left.ike_sa()
                    return sa is not None and len(sa[1]) == 1 and sa[1][0] != before

                wait_for(rekeyed, 10, f"rekey {n}", interval=0.002)
                durations.append(time.monotonic() - started)
                if ike_every and n % ike_every == 0:
                    spi = settled(left)[0]
                    left.rekey(ike=True)
                    wait_for(
                        lambda spi=spi: (sa := left.ike_sa()) is not None and sa[0] != spi,
                        10,
                        "IKE rekey",
                        interval=0.002,
                    )
                    ike_rekeys += 1
                if n % 50 == 0:
                    theirs = [
                        c
                        for sa in charon.list_sas()
                        for c in sa["children"]
                        if c["state"] == "INSTALLED"
                    ]
                    ours = settled(left)[1]
                    duplicates += max(0, len(theirs) - 1) + max(0, len(ours) - 1)
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
    results = {
        left.name: soak(left, args.count, args.ike_every) for left in (IkepulseLeft, CharonLeft)
    }
    ours, theirs = results["ikepulse"], results["strongswan"]
    print(f"{'':22s} {'ikepulse<->strongSwan':>22s} {'strongSwan<->strongSwan':>24s}")
    for key in ours:
        print(f"{key:22s} {ours[key]:>22} {theirs[key]:>24}")
    ratio = round(ours["ms_per_rekey_median"] / theirs["ms_per_rekey_median"], 2)
    print(f"median time per rekey, ikepulse / strongSwan: {ratio}")
    write_results(
        "rekey_soak",
        {"count": args.count, "ike_every": args.ike_every},
        ikepulse_strongswan=ours,
        strongswan_strongswan=theirs,
        median_ratio=ratio,
    )


if __name__ == "__main__":
    main()
