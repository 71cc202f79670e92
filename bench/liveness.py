"""Liveness when the path breaks, in whole or in part: ikepulse against strongSwan, same lab,
same run.

    sudo .venv/bin/python bench/liveness.py [--dpd-delay 2] [--tuned-strongswan]
                                            [--only NAME ...] [--limit 400] [--path-limit 60]

The peer on the right is always strongSwan. The side under test on the left is ikepulse
(dpd_delay, dpd_timeout 3s, dpd_action restart) or strongSwan (same dpd_delay,
dpd_action restart, its retransmission settings: default 4 s x 1.8^n, 5 tries, or with
--tuned-strongswan timeout 0.5 s, base 1.5, 3 tries).

detection:       the right gateway is blackholed; seconds until the left declares it dead.
restore:         the right charon is killed (SIGKILL) and started again at once; seconds until
                 a ping from the left site host gets through the tunnel again.
one_way_esp:     everything the left sends is dropped while the right site pings the left
                 site (the peer's ESP still arrives); seconds until the left declares it.
one_way_checks:  the same, with the right's own liveness checks (dpd_delay 1s) arriving and
                 no traffic.
nat_remap_busy:  left behind a NAT that remaps it to a new port while a 10 pps ping flows;
                 the longest ping outage (default dpd_delay 30s on the left: no help from
                 the routine check).
nat_remap_idle:  the NAT remaps an idle tunnel; 3 s later the left site starts pinging:
                 seconds until the first reply.
mobike_move:     the left gateway's outer address changes (MOBIKE on both sides); seconds
                 until a ping gets through again.
ikev1_detection: as detection, both sides IKEv1 (RFC 3706 DPD). ikepulse (dpd_delay,
                 dpd_timeout 3s) against strongSwan's IKEv1 DPD with the same dpd_delay and
                 its default dpd_timeout (0: the sum of its retransmission timeouts,
                 ikev1_detection_s), ikepulse's 3 s (ikev1_detection_same_timeout_s), or
                 dpd_delay + 3 s (ikev1_detection_same_budget_s): strongSwan's IKEv1
                 dpd_timeout counts from the last packet received, not from the probe
                 (its timeout job runs dpd_timeout - dpd_delay after the R-U-THERE).

A path scenario not repaired within --path-limit seconds is reported as null (never).
Writes bench/results/liveness.json (or liveness_tuned.json); with --only, the figures of the
scenarios not run are kept from the file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ikepulse.testing.lab import (
    Lab,
    ikepulse_conf,
    lab_unavailable,
    swanctl_conf,
    wait_for,
)
from results_file import RESULTS, write_results

GIVE_UP = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) .*giving up after \d+ retransmits")
DPD_TIMED_OUT = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) .*DPD check timed out")
"""strongSwan's IKEv1 verdict (processing/jobs/dpd_timeout_job.c)."""
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from")


def responder(lab: Lab, extra: str = "", mobike: bool = False):
    charon = lab.charon(lab.right)
    remote = "%any" if lab.nat else lab.left_addr
    conf = swanctl_conf(local_addr=lab.right_addr, remote_addr=remote, extra=extra, mobike=mobike)
    charon.start(conf)
    return charon, conf


def left_ikepulse(lab: Lab, dpd_delay: float):
    daemon = lab.ikepulse(lab.left)
    extra = f'dpd_delay = "{dpd_delay}s"\ndpd_timeout = "3s"\ndpd_action = "restart"\n'
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=extra))
    daemon.cli("up", "lab")
    return daemon


def left_charon(lab: Lab, dpd_delay: float, tuned: bool, mobike: bool = False):
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
            mobike=mobike,
        ),
        charon_options=options,
    )
    charon.swanctl("--initiate", "--child", "lan")
    return charon


@contextmanager
def lab_up(nat: bool = False) -> Iterator[Lab]:
    with tempfile.TemporaryDirectory(prefix="ikepulse-bench-") as tmp:
        lab = Lab(Path(tmp), nat=nat).up()
        try:
            yield lab
        finally:
            lab.down()


def left_gateway(lab: Lab, kind: str, dpd_delay: float, tuned: bool, mobike: bool = False):
    """The side under test; for ikepulse a daemon, for strongSwan a charon."""
    if kind == "ikepulse":
        return left_ikepulse(lab, dpd_delay)
    return left_charon(lab, dpd_delay, tuned, mobike)


def verdict_time(left, kind: str, limit: float, pattern: re.Pattern = GIVE_UP) -> float | None:
    """When the left declared its peer dead (Unix time), or None within ``limit``; for
    strongSwan the first log line matching ``pattern``."""
    if kind == "ikepulse":

        def verdict():
            status = json.loads(left.cli("status", "--json").stdout)
            return status["connections"][0]["last_death"] and time.time()

    else:
        day = datetime.now()

        def verdict():
            for line in left.log.read_text().splitlines():
                if match := pattern.match(line):
                    return _log_time(match.group(1), day)
            return None

    try:
        return wait_for(verdict, limit, "the verdict", interval=0.05)
    except TimeoutError:
        return None


def flood_ping(lab: Lab, ns, target: str, seconds: float):
    log = lab.workdir / f"ping-{ns.name}.log"
    cmd = ["ping", "-D", "-n", "-i", "0.1", "-W", "1", "-w", f"{seconds:.0f}", target]
    return ns.popen(cmd, log), log


def replies(log: Path) -> list[float]:
    return [float(m[1]) for line in log.read_text().splitlines() if (m := REPLY.match(line))]


def first_reply_after(lab: Lab, since: float, limit: float) -> float | None:
    """Seconds from ``since`` until a ping from the left site gets through, None if never."""

    def ping_ok():
        result = lab.left_site.run("ping", "-c", "1", "-W", "0.2", "203.0.113.66", check=False)
        return result.returncode == 0

    try:
        wait_for(ping_ok, limit, "traffic through the tunnel", interval=0.0)
    except TimeoutError:
        return None
    return time.time() - since


def _log_time(line_time: str, day: datetime) -> float:
    stamp = datetime.strptime(line_time, "%H:%M:%S.%f").replace(
        year=day.year, month=day.month, day=day.day
    )
    return stamp.timestamp()


def declared_after(
    left, kind: str, limit: float, break_path, pattern: re.Pattern = GIVE_UP
) -> float | None:
    """Seconds from ``break_path()`` until the left declares the peer dead, None if never."""
    broken = time.time()
    break_path()
    at = verdict_time(left, kind, limit, pattern)
    return None if at is None else at - broken


def detection(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    with lab_up() as lab:
        responder(lab)
        left = left_gateway(lab, kind, dpd_delay, tuned)
        time.sleep(0.5)
        return declared_after(left, kind, limit, lambda: lab.blackhole(lab.right))


def one_way_esp(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    with lab_up() as lab:
        responder(lab)
        left = left_gateway(lab, kind, dpd_delay, tuned)
        flood_ping(lab, lab.right_site, "203.0.113.2", limit + 5)
        time.sleep(1.0)
        return declared_after(left, kind, limit, lambda: lab.drop_sent(lab.left))


def one_way_checks(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    with lab_up() as lab:
        responder(lab, extra="dpd_delay = 1s")
        left = left_gateway(lab, kind, dpd_delay, tuned)
        time.sleep(1.5)
        return declared_after(left, kind, limit, lambda: lab.drop_sent(lab.left))


def nat_remap_busy(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    """The longest ping outage around the remap; None if traffic never came back."""
    with lab_up(nat=True) as lab:
        responder(lab, mobike=True)
        left_gateway(lab, kind, 30.0, tuned, mobike=True)
        pinger, log = flood_ping(lab, lab.left_site, "203.0.113.66", limit + 4)
        time.sleep(2)
        lab.remap_nat()
        pinger.wait(timeout=limit + 20)
        times = replies(log)
        if not times or times[-1] < time.time() - 2:
            return None
        return max(b - a for a, b in itertools.pairwise(times))


def nat_remap_idle(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    with lab_up(nat=True) as lab:
        responder(lab, mobike=True)
        left_gateway(lab, kind, 30.0, tuned, mobike=True)
        time.sleep(0.5)
        lab.remap_nat()
        time.sleep(3)
        return first_reply_after(lab, time.time(), limit)


def mobike_move(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    with lab_up() as lab:
        responder(lab, mobike=True)
        left_gateway(lab, kind, dpd_delay, tuned, mobike=True)
        time.sleep(0.5)
        left = lab.left
        left.run("sysctl", "-qw", "net.ipv4.conf.vl0.promote_secondaries=1")
        left.run("ip", "addr", "add", "198.51.100.3/24", "dev", "vl0")
        time.sleep(0.5)
        moved = time.time()
        left.run("ip", "addr", "del", "198.51.100.1/24", "dev", "vl0")
        return first_reply_after(lab, moved, limit)


def restore(kind: str, dpd_delay: float, tuned: bool, limit: float) -> float | None:
    with lab_up() as lab:
        peer, conf = responder(lab)
        left_gateway(lab, kind, dpd_delay, tuned)
        time.sleep(0.5)
        crashed = time.time()
        peer.stop(signal.SIGKILL)
        peer.start(conf)
        return first_reply_after(lab, crashed, limit)


V1_IKE, V1_ESP = "aes256-sha256-modp2048", "aes256-sha256"


def ikev1_detection(kind: str, dpd_delay: float, dpd_timeout: float | None, limit: float):
    """Blackhole, both sides IKEv1; strongSwan's ``dpd_timeout`` None is its default."""
    with lab_up() as lab:
        lab.charon(lab.right).start(
            swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr, version=1,
                         proposals=V1_IKE, esp_proposals=V1_ESP)
        )  # fmt: skip
        if kind == "ikepulse":
            left = lab.ikepulse(lab.left)
            extra = f'dpd_delay = "{dpd_delay}s"\ndpd_timeout = "3s"\ndpd_action = "restart"\n'
            left.start(
                ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, version=1,
                              proposals=V1_IKE, esp_proposals=V1_ESP, extra=extra)
            )  # fmt: skip
            left.cli("up", "lab")
        else:
            left = lab.charon(lab.left, "charon-left")
            timeout = None if dpd_timeout is None else f"{dpd_timeout:g}s"
            left.start(
                swanctl_conf(side="left", local_addr=lab.left_addr, remote_addr=lab.right_addr,
                             version=1, proposals=V1_IKE, esp_proposals=V1_ESP,
                             dpd_delay=f"{dpd_delay:g}s", dpd_timeout=timeout,
                             child_extra="dpd_action = restart")
            )  # fmt: skip
            left.swanctl("--initiate", "--child", "lan")
        time.sleep(0.5)
        return declared_after(left, kind, limit, lambda: lab.blackhole(lab.right), DPD_TIMED_OUT)


IKEV1 = {
    "ikev1_detection_s": ("ikepulse", "strongswan"),
    "ikev1_detection_same_timeout_s": ("strongswan",),
    "ikev1_detection_same_budget_s": ("strongswan",),
}
"""IKEv1 figures and who is measured for them (ikepulse's is the same run for both)."""


def measure_ikev1(only, dpd_delay: float, limit: float, results: dict, ratios: dict) -> None:
    for name, kinds in IKEV1.items():
        if only and name not in only and name.removesuffix("_s") not in only:
            continue
        for kind in kinds:
            timeout = {
                "ikev1_detection_same_timeout_s": 3.0,
                "ikev1_detection_same_budget_s": dpd_delay + 3.0,
            }.get(name)
            value = ikev1_detection(kind, dpd_delay, timeout, limit)
            results[kind][name] = None if value is None else round(value, 2)
            shown = "never" if value is None else f"{value:8.2f} s"
            print(f"{kind:10s} {name:32s} {shown}", flush=True)
        ikepulse = results["ikepulse"].get("ikev1_detection_s")
        ratios[name] = ratio(results["strongswan"][name], ikepulse, limit)
        print(f"{'':10s} {name:32s} strongSwan / ikepulse: {ratios[name]}", flush=True)


BLACKHOLE = {"detection_s": detection, "restore_s": restore}
PATHS = {
    "one_way_esp_s": one_way_esp,
    "one_way_checks_s": one_way_checks,
    "nat_remap_busy_outage_s": nat_remap_busy,
    "nat_remap_idle_s": nat_remap_idle,
    "mobike_move_s": mobike_move,
}


def ratio(strongswan: float | None, ikepulse: float | None, limit: float) -> str:
    if ikepulse is None:
        return "ikepulse never"
    if strongswan is None:
        return f"> {limit / ikepulse:.0f}x (strongSwan never, within {limit:g}s)"
    return f"{strongswan / ikepulse:.1f}x"


def earlier_figures(name: str) -> dict:
    """The figures of the last full run, kept where this run measures only some."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dpd-delay", type=float, default=2.0)
    parser.add_argument("--tuned-strongswan", action="store_true")
    parser.add_argument("--limit", type=float, default=400.0, help="blackhole scenarios")
    parser.add_argument("--path-limit", type=float, default=60.0, help="the other scenarios")
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason:
        raise SystemExit(f"liveness bench: the lab {reason}")
    scenarios = [
        (name, measure, args.limit if name in BLACKHOLE else args.path_limit)
        for name, measure in {**BLACKHOLE, **PATHS}.items()
        if not args.only or name.removesuffix("_s") in args.only or name in args.only
    ]
    output = "liveness_tuned" if args.tuned_strongswan else "liveness"
    previous = earlier_figures(output) if args.only else {}
    results: dict[str, dict[str, float | None]] = previous.get(
        "results", {"ikepulse": {}, "strongswan": {}}
    )
    ratios = previous.get("ratios", {})
    for name, measure, limit in scenarios:
        for kind in ("ikepulse", "strongswan"):
            value = measure(kind, args.dpd_delay, args.tuned_strongswan, limit)
            results[kind][name] = None if value is None else round(value, 2)
            shown = "never" if value is None else f"{value:8.2f} s"
            print(f"{kind:10s} {name:24s} {shown}", flush=True)
        ratios[name] = ratio(results["strongswan"][name], results["ikepulse"][name], limit)
        print(f"{'':10s} {name:24s} strongSwan / ikepulse: {ratios[name]}", flush=True)
    if not args.tuned_strongswan:
        measure_ikev1(args.only, args.dpd_delay, args.limit, results, ratios)
    retransmit = (
        "tuned 0.5s x 1.5^n, 3 tries" if args.tuned_strongswan else "default 4s x 1.8^n, 5 tries"
    )
    write_results(
        output,
        {
            **previous.get("meta", {}),
            "dpd_delay": args.dpd_delay,
            "ikepulse_dpd_timeout": 3.0,
            "strongswan_retransmit": retransmit,
            "nat_remap_dpd_delay": 30.0,
            "path_limit": args.path_limit,
            "ikev1_strongswan_dpd_timeout": "default (0s: retransmission sum), 3s, dpd_delay+3s",
            **({"only": args.only, "others_from": previous["meta"]["date"]} if previous else {}),
        },
        results=results,
        ratios=ratios,
    )


if __name__ == "__main__":
    main()
