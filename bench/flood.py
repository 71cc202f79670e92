"""Legitimate peers through an IKE_SA_INIT flood: ikepulse against strongSwan as the gateway,
same lab, same flood, same run.

    sudo .venv/bin/python bench/flood.py [--seconds 20] [--rate 10000] [--peers 4] [--no-v1]

The gateway under test is ``right`` (198.51.100.2), a roadwarrior gateway (its peer
connections accept any address). ``left`` is a strongSwan charon holding one established
tunnel ``lab`` (a ping from the left site to the right site runs through it, 20 a second)
and --peers more connections from their own addresses (198.51.100.11, ...) that keep
bringing up new tunnels (IKE SA + CHILD SA: ``swanctl --initiate``, then terminate, again).
A ``flood`` namespace joined to the right by its own link holds 192.0.2.1-200 and sends,
from a raw socket, --rate IKE_SA_INIT requests a second from those 200 addresses plus
--rate garbage datagrams a second (bench/flood_sender.py).

Each gateway gets a quiet phase (--quiet seconds, the baseline), a flood phase (--seconds)
and an IKEv1 flood phase (--seconds; spoofed Main and Aggressive Mode first messages at
--rate instead of IKE_SA_INIT, the AM1 naming a configured identity so that each one the
gateway admits costs it a DH, while the --peers bring up IKEv1 Aggressive Mode tunnels
``new<k>v1`` instead); per phase: legitimate setups tried and succeeded, their setup time
(median, 95th percentile, max; wall time of ``swanctl --initiate``, 10 s limit), pings lost
through the established tunnel (ESP in UDP 4500: the port the garbage "ESP" goes to) and
their round trip, the gateway's CPU (share of one core) and memory (RSS, largest), its log
lines a second, and datagrams the right namespace dropped on full socket buffers (all, and
per gateway port from /proc/net/udp).
ikepulse runs with its defaults (cookie_threshold 10, half_open_limit 1000, 5 half-open per
address, 10 IKE_SA_INIT/s per address, half-open timeout 30 s), strongSwan with its own
(cookie_threshold 30, block_threshold 5, half_open_timeout 30 s); both log as the lab
configures them (ikepulse --log-level debug, charon ike=2 net=2).
Writes bench/results/flood.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from ikepulse.core.sa_manager import SaManager
from ikepulse.testing.lab import Lab, lab_unavailable, run, swanctl_conf
from ikepulse.testing.lab_configs import AGGRESSIVE_PSK_RESPONDER
from ikepulse.testing.loopback import LEFT, LEFT_NET, RIGHT, RIGHT_NET, connection, make_peers
from results_file import write_results

IKE = "aes256gcm16-prfsha256-x25519"
ESP = "aes256gcm16"
IKE_V1 = "aes128-sha256-ecp256"
PING_INTERVAL = 0.05
SENDER = Path(__file__).resolve().parent / "flood_sender.py"
FLOOD_SOURCES = 200
SETUP_LIMIT = 10
TICKS = os.sysconf("SC_CLK_TCK")


def peer_addr(k: int) -> str:
    return f"198.51.100.{11 + k}"


def peer_ts(k: int) -> tuple[str, str]:
    """(the peer's, the gateway's) selector of new tunnel ``k``: off the ping's path."""
    return f"203.0.113.{140 + k}/32", f"203.0.113.{160 + k}/32"


def peer_ts_v1(k: int) -> tuple[str, str]:
    """The same for IKEv1 tunnel ``k``."""
    return f"203.0.113.{180 + k}/32", f"203.0.113.{200 + k}/32"


# --- configurations ------------------------------------------------------------------------


def gateway_ikepulse(lab: Lab, peers: int):
    conf = "\n"
    for name, remote, rid, lts, rts, version in _gateway_connections(lab, peers):
        v1 = "version = 1\naggressive = true\n" if version == 1 else ""
        conf += f"""
[connections.{name}]
{v1}local_addrs = ["{lab.right_addr}"]
remote_addrs = ["{remote}"]
proposals = ["{IKE_V1 if version == 1 else IKE}"]
local = {{ auth = "psk", id = "right.example" }}
remote = {{ auth = "psk", id = "{rid}" }}

[connections.{name}.children.lan]
local_ts = ["{lts}"]
remote_ts = ["{rts}"]
esp_proposals = ["{ESP}"]

[secrets.{name}]
ids = ["right.example", "{rid}"]
secret = "0123456789abcdef"
"""
    daemon = lab.ikepulse(lab.right)
    daemon.start(conf)
    return daemon


def gateway_charon(lab: Lab, peers: int):
    conns, secrets = "", ""
    for name, remote, rid, lts, rts, version in _gateway_connections(lab, peers):
        conns += _swan_conn(
            name, lab.right_addr, remote, "right.example", rid, lts, rts, version
        )  # fmt: skip
        secrets += _swan_secret(name, "right.example", rid)
    charon = lab.charon(lab.right)
    charon.start(f"connections {{\n{conns}}}\nsecrets {{\n{secrets}}}\n", AGGRESSIVE_PSK_RESPONDER)
    return charon


def _gateway_connections(lab: Lab, peers: int):
    yield "lab", lab.left_addr, "left.example", "203.0.113.64/26", "203.0.113.0/26", 2
    for k in range(peers):
        theirs, ours = peer_ts(k)
        yield f"peer{k}", "%any", f"new{k}.example", ours, theirs, 2
        theirs, ours = peer_ts_v1(k)
        yield f"peer{k}v1", "%any", f"new{k}v1.example", ours, theirs, 1


def _swan_conn(name, local, remote, lid, rid, lts, rts, version=2) -> str:
    v1 = "aggressive = yes\n    " if version == 1 else ""
    return f"""  {name} {{
    version = {version}
    {v1}local_addrs = {local}
    remote_addrs = {remote}
    proposals = {IKE_V1 if version == 1 else IKE}
    mobike = no
    local {{
      auth = psk
      id = {lid}
    }}
    remote {{
      auth = psk
      id = {rid}
    }}
    children {{
      lan {{
        local_ts = {lts}
        remote_ts = {rts}
        esp_proposals = {ESP}
        mode = tunnel
      }}
    }}
  }}
"""


def _swan_secret(name, lid, rid) -> str:
    return f"""  ike-{name} {{
    id-1 = {lid}
    id-2 = {rid}
    secret = 0123456789abcdef
  }}
"""


def left_initiators(lab: Lab, peers: int):
    """The established tunnel ``lab`` and the peers' connections ``new0``...."""
    conns = swanctl_conf(side="left", local_addr=lab.left_addr, remote_addr=lab.right_addr)
    conns = conns[: conns.index("secrets {")].rstrip()[:-1]  # reopen connections { }
    secrets = _swan_secret("lab", "left.example", "right.example")
    for k in range(peers):
        lab.left.run("ip", "addr", "add", f"{peer_addr(k)}/24", "dev", "vl0")
        ours, theirs = peer_ts(k)
        lab.left.run("ip", "addr", "add", ours, "dev", "lo")  # libipsec routes from it
        lab.right.run("ip", "addr", "add", theirs, "dev", "lo")
        conns += _swan_conn(
            f"new{k}", peer_addr(k), lab.right_addr, f"new{k}.example", "right.example",
            ours, theirs,
        )  # fmt: skip
        secrets += _swan_secret(f"new{k}", f"new{k}.example", "right.example")
        ours, theirs = peer_ts_v1(k)
        lab.left.run("ip", "addr", "add", ours, "dev", "lo")
        lab.right.run("ip", "addr", "add", theirs, "dev", "lo")
        conns += _swan_conn(
            f"new{k}v1", peer_addr(k), lab.right_addr, f"new{k}v1.example", "right.example",
            ours, theirs, version=1,
        )  # fmt: skip
        secrets += _swan_secret(f"new{k}v1", f"new{k}v1.example", "right.example")
    charon = lab.charon(lab.left, "charon-left")
    charon.start(f"{conns}}}\nsecrets {{\n{secrets}}}\n")
    charon.swanctl("--initiate", "--child", "lan", timeout=20)
    return charon


def flood_namespace(lab: Lab):
    """``flood``: 192.0.2.1-200 on a link to the right (192.0.2.254); what comes back is
    dropped at input (no ICMP errors)."""
    flood = lab.ns("flood")
    run("ip", "netns", "add", flood.name)
    lab.namespaces.append(flood)
    flood.run("ip", "link", "set", "lo", "up")
    lab._link(flood, "vf1", "192.0.2.201/24", lab.right, "vf0", "192.0.2.254/24")
    batch = lab.workdir / "flood-addrs"
    batch.write_text(
        "".join(f"addr add 192.0.2.{n}/24 dev vf1\n" for n in range(1, FLOOD_SOURCES + 1))
    )
    flood.run("ip", "-b", str(batch))
    flood.run("ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
    rules = lab.workdir / "flood.nft"
    rules.write_text(
        "table inet sink {\n  chain input {\n    type filter hook input priority 0;\n"
        "    udp sport { 500, 4500 } drop\n  }\n}\n"
    )
    flood.run("nft", "-f", str(rules))
    return flood


def template() -> bytes:
    """A real IKE_SA_INIT request (aes256gcm16-prfsha256-x25519 among its proposals)."""
    a, _ = make_peers(seed=random.randrange(1 << 30))
    a.manager.initiate("site", LEFT, RIGHT, 0.0)
    return a.manager.datagrams_to_send(0.0)[0].data


def templates_v1() -> list[bytes]:
    """A real MM1 and a real AM1 (IKE_V1; the AM1 names ``new0v1.example``, configured on
    the gateway, whose answer AM2 needs a DH)."""
    out = []
    for aggressive in (False, True):
        conn = connection(
            "new0v1.example", "right.example", LEFT_NET, RIGHT_NET, ike=IKE_V1,
            esp=ESP, version=1, aggressive=aggressive,
        )  # fmt: skip
        manager = SaManager([conn], random.Random(random.randrange(1 << 30)))
        manager.initiate("site", LEFT, RIGHT, 0.0)
        out.append(manager.datagrams_to_send(0.0)[0].data)
    return out


# --- measurement ---------------------------------------------------------------------------


class Usage(threading.Thread):
    """CPU time and the largest RSS of one process, sampled twice a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.peak = max(self.peak, self.rss())


def setups(left, peers: int, seconds: float, suffix: str = "") -> list[float | None]:
    """Each peer brings a new tunnel up, tears it down, again, for ``seconds``: the setup
    times (None: failed or not within SETUP_LIMIT)."""
    out: list[float | None] = []
    until = time.monotonic() + seconds

    def peer(k: int) -> None:
        while time.monotonic() < until:
            began = time.monotonic()
            result = left.ns.run(
                "swanctl", "--initiate", "--child", "lan", "--ike", f"new{k}{suffix}",
                "--timeout", str(SETUP_LIMIT), "--uri", left.uri, check=False,
                timeout=SETUP_LIMIT + 10,
            )  # fmt: skip
            took = time.monotonic() - began
            out.append(took if result.returncode == 0 else None)
            left.ns.run(
                "swanctl", "--terminate", "--ike", f"new{k}{suffix}", "--force", "--timeout", "2",
                "--uri", left.uri, check=False, timeout=15,
            )  # fmt: skip

    if not peers:  # the flood alone (--peers 0)
        time.sleep(seconds)
    threads = [threading.Thread(target=peer, args=(k,)) for k in range(peers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def ping_loss(lab: Lab, seconds: float):
    """A count of pings over ``seconds``, each waited for (``-w`` alone would count the
    one in flight when time is up as lost)."""
    log = lab.workdir / f"ping-{time.monotonic_ns()}.log"
    count = int(seconds / PING_INTERVAL)
    proc = lab.left_site.popen(
        ["ping", "-n", "-q", "-i", str(PING_INTERVAL), "-c", str(count),
         "-w", f"{seconds + 5:.0f}", "203.0.113.66"],
        log,
    )  # fmt: skip
    return proc, log


def loss_of(proc, log: Path) -> dict:
    proc.wait(60)
    out = {"sent": 0, "received": 0, "loss": None}
    for line in log.read_text().splitlines():
        if "packets transmitted" in line:
            sent, received = int(line.split()[0]), int(line.split()[3])
            out = {"sent": sent, "received": received, "loss": round(1 - received / sent, 4)}
        elif line.startswith(("rtt ", "round-trip")):
            low, avg, high, _ = line.split("=")[1].split()[0].split("/")
            out["rtt_ms"] = {"min": float(low), "avg": float(avg), "max": float(high)}
    return out


def udp_drops(lab: Lab) -> dict[str, int]:
    """Datagrams dropped on each of the right namespace's IKE ports' sockets so far."""
    drops = {"500": 0, "4500": 0}
    for line in lab.right.run("cat", "/proc/net/udp").stdout.splitlines()[1:]:
        fields = line.split()
        port = str(int(fields[1].split(":")[1], 16))
        if port in drops:
            drops[port] += int(fields[-1])
    return drops


def lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def phase(lab, gateway, left, args, flood: str | None) -> dict:
    """``flood``: None (quiet), "v2" (IKE_SA_INIT) or "v1" (MM1 and AM1, IKEv1 peers)."""
    seconds = args.seconds if flood else args.quiet
    usage = Usage(gateway.proc.pid)
    usage.start()
    cpu0, lines0, drops0 = usage.cpu(), lines(gateway.log), lab.right.udp_receive_buffer_errors()
    ports0 = udp_drops(lab)
    ping = ping_loss(lab, seconds)
    sender = None
    if flood:
        sent = templates_v1() if flood == "v1" else [template()]
        sender_log = lab.workdir / f"sender-{time.monotonic_ns()}.log"
        sender = lab.ns("flood").popen(
            [
                sys.executable, str(SENDER), ",".join(t.hex() for t in sent), lab.right_addr,
                str(args.rate), str(seconds), "192.0.2.1", str(FLOOD_SOURCES),
            ],
            sender_log,
        )  # fmt: skip
    began = time.monotonic()
    times = setups(left, args.peers, seconds, "v1" if flood == "v1" else "")
    elapsed = time.monotonic() - began
    cpu = usage.cpu() - cpu0
    usage.stopped.set()
    usage.join()
    out = {
        "seconds": round(elapsed, 1),
        "setups_tried": len(times),
        "setups_ok": sum(t is not None for t in times),
        "setup_share_ok": round(sum(t is not None for t in times) / max(1, len(times)), 3),
        "setup_s": _spread([t for t in times if t is not None]),
        "ping": loss_of(*ping),
        "cpu_share_of_core": round(cpu / elapsed, 3),
        "rss_peak_mb": round(max(usage.peak, usage.rss()) / 2**20, 1),
        "log_lines_per_s": round((lines(gateway.log) - lines0) / elapsed, 1),
        "udp_rcvbuf_drops": lab.right.udp_receive_buffer_errors() - drops0,
        "udp_drops_per_port": {k: v - ports0[k] for k, v in udp_drops(lab).items()},
    }
    if sender is not None:
        sender.wait(30)
        sent = sender_log.read_text().strip().splitlines()
        out["flood_sent"] = json.loads(sent[-1]) if sent else None
    return out


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    values = sorted(values)
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 3),
        "max": round(values[-1], 3),
    }


def measure(kind: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-flood-") as tmp:
        lab = Lab(Path(tmp)).up()
        try:
            flood_namespace(lab)
            if kind == "ikepulse":
                gateway = gateway_ikepulse(lab, args.peers)
            else:
                gateway = gateway_charon(lab, args.peers)
            left = left_initiators(lab, args.peers)
            time.sleep(0.5)
            result = {"quiet": phase(lab, gateway, left, args, flood=None)}
            result["flood"] = phase(lab, gateway, left, args, flood="v2")
            if args.v1:
                result["flood_v1"] = phase(lab, gateway, left, args, flood="v1")
            if kind == "ikepulse":
                counters = gateway.counters()
                keep = ("cookies", "half_open", "dropped", "drops", "ike_sa_init")
                result["counters"] = {
                    k: v for k, v in sorted(counters.items()) if any(w in k for w in keep)
                }
                result["ike_sas_after"] = len(gateway.status())
            else:
                stats = gateway.swanctl("--stats")
                result["stats"] = [s.strip() for s in stats.splitlines() if "IKE_SA" in s]
            return result
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quiet", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--gateways", nargs="+", default=["ikepulse", "strongswan"])
    parser.add_argument("--no-v1", dest="v1", action="store_false", help="no IKEv1 phase")
    args = parser.parse_args()
    if reason := lab_unavailable():
        sys.exit(f"lab unavailable: {reason}")
    load_before = os.getloadavg()[0]
    figures = {kind: measure(kind, args) for kind in args.gateways}
    for kind, result in figures.items():
        for name in ("quiet", "flood", "flood_v1"):
            if name not in result:
                continue
            r = result[name]
            print(
                f"{kind:10} {name:5}: setups {r['setups_ok']}/{r['setups_tried']}"
                f" median {r['setup_s'] and r['setup_s']['median']} s,"
                f" ping loss {r['ping']['loss']} rtt {r['ping'].get('rtt_ms')},"
                f" cpu {r['cpu_share_of_core']:.0%},"
                f" rss {r['rss_peak_mb']} MB, log {r['log_lines_per_s']}/s,"
                f" rcvbuf drops {r['udp_rcvbuf_drops']} {r['udp_drops_per_port']}"
                + (f", sent {r['flood_sent']}" if "flood_sent" in r else "")
            )
    if len(figures) < 2:
        return  # a partial run: figures printed, the results file left as it was
    ours, theirs = figures["ikepulse"]["flood"], figures["strongswan"]["flood"]
    figures["ratios"] = {
        "setup_share_ok_ikepulse_vs_strongswan": [ours["setup_share_ok"], theirs["setup_share_ok"]],
        "cpu_ikepulse_over_strongswan": round(
            ours["cpu_share_of_core"] / max(theirs["cpu_share_of_core"], 1e-3), 2
        ),
    }
    if args.v1:
        ours, theirs = figures["ikepulse"]["flood_v1"], figures["strongswan"]["flood_v1"]
        figures["ratios"]["v1_setup_share_ok_ikepulse_vs_strongswan"] = [
            ours["setup_share_ok"],
            theirs["setup_share_ok"],
        ]
    meta = {k: getattr(args, k) for k in ("seconds", "quiet", "rate", "peers", "v1")}
    meta["flood_sources"] = FLOOD_SOURCES
    meta["cpus"] = os.cpu_count()
    meta["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    meta["note"] = (
        "load_average_1min before and after: other work on the machine shares its CPUs and "
        "the flood sender takes most of one"
    )
    write_results("flood", meta, **figures)


if __name__ == "__main__":
    main()
