"""The interop lab: network namespaces, strongSwan (charon + kernel-libipsec) and ikepulse.

Used by the interop tests and by ``ikepulse demo``. Everything is created by the caller and
removed by ``Lab.down()``; processes are ended by PID, and only 192.0.2.0/24, 198.51.100.0/24
and 203.0.113.0/24 are used (../shared/LAB.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The config writers live in lab_configs; re-exported for ``from ikepulse.testing.lab import``.
from ikepulse.testing.lab_configs import AGGRESSIVE_PSK_RESPONDER as AGGRESSIVE_PSK_RESPONDER
from ikepulse.testing.lab_configs import LEFT_NET as LEFT_NET
from ikepulse.testing.lab_configs import PSK as PSK
from ikepulse.testing.lab_configs import RIGHT_NET as RIGHT_NET
from ikepulse.testing.lab_configs import SIDES as SIDES
from ikepulse.testing.lab_configs import ikepulse_conf as ikepulse_conf
from ikepulse.testing.lab_configs import swanctl_conf as swanctl_conf

SRC = Path(__file__).resolve().parents[2]
IKEPULSE = [sys.executable, "-m", "ikepulse.cli"]
CHARON = "/usr/lib/ipsec/charon"


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "nft", "swanctl", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path(CHARON).exists():
        return "strongSwan charon is not installed"
    return None


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Namespace:
    name: str
    spawned: list | None = field(default=None, compare=False, repr=False)
    """Where processes started in this namespace are recorded, so the lab can end them."""

    def run(self, *args: str, check: bool = True, timeout: float = 30):
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def popen(self, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if self.spawned is not None:
            self.spawned.append(proc)
        return proc

    def udp_receive_buffer_errors(self) -> int:
        """Datagrams this namespace dropped on a full socket receive buffer (a gateway that
        could not keep up), from /proc/net/snmp."""
        udp = [line.split() for line in self.run("cat", "/proc/net/snmp").stdout.splitlines()]
        header, values = (fields for fields in udp if fields[0] == "Udp:")
        return int(values[header.index("RcvbufErrors")])


_SNIFF = """
import socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
sock.bind((sys.argv[1], 0))
sock.settimeout(0.2)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        frame = sock.recv(65535)
    except TimeoutError:
        continue
    print(frame[14:].hex(), flush=True)
"""


class Sniffer:
    """IPv4 packets arriving on one interface of a namespace for a while (AF_PACKET)."""

    def __init__(self, ns: Namespace, ifname: str, seconds: float) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, sys.executable, "-c", _SNIFF, ifname, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)

    def packets(self) -> list[bytes]:
        """Wait for the capture to end; the IP packets, oldest first."""
        return [bytes.fromhex(line) for line in self.proc.communicate(timeout=60)[0].split()]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class Charon:
    """One strongSwan charon in a namespace, with a private /run and its own vici socket."""

    ns: Namespace
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"unix://{self.workdir}/charon.vici"

    @property
    def log(self) -> Path:
        return self.workdir / "charon.log"

    def start(self, swanctl_conf: str, charon_options: str = "") -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "strongswan.conf").write_text(f"""
charon {{
  load_modular = yes
  {charon_options}
  filelog {{
    main {{
      path = {self.log}
      time_format = %T
      time_add_ms = yes
      flush_line = yes
      default = 1
      ike = 2
      net = 2
    }}
  }}
  plugins {{
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec {{
      load = yes
    }}
    vici {{
      socket = {self.uri}
    }}
  }}
}}
""")
        (self.workdir / "swanctl.conf").write_text(swanctl_conf)
        Path(self.uri[7:]).unlink(missing_ok=True)
        env = dict(os.environ, STRONGSWAN_CONF=str(self.workdir / "strongswan.conf"))
        self.proc = self.ns.popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs none /run && exec {CHARON}",
            ],
            self.workdir / "charon.stdout",
            env=env,
        )
        wait_for(lambda: Path(self.uri[7:]).exists(), 10, "charon's vici socket")
        self.swanctl("--load-all", "--file", str(self.workdir / "swanctl.conf"))

    def swanctl(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        return self.ns.run("swanctl", *args, "--uri", self.uri, check=check, timeout=timeout).stdout

    def list_sas(self) -> list[dict]:
        """IKE SAs as dicts (via the vici protocol): name, state, SPIs, children."""
        import vici

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.uri[7:])
        try:
            session = vici.Session(sock)
            out = []
            for entry in session.list_sas():
                for name, sa in entry.items():
                    sa = _decode(sa)
                    sa["name"] = name
                    sa["children"] = list(sa.get("child-sas", {}).values())
                    out.append(sa)
            return out
        finally:
            sock.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            _stop(self.proc, sig)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _offload_line() -> str:
    """``IKEPULSE_LAB_OFFLOAD=on|off`` runs every lab daemon with TUN offloads on or off."""
    value = os.environ.get("IKEPULSE_LAB_OFFLOAD", "")
    return f"offload = {str(value == 'on').lower()}\n" if value in ("on", "off") else ""


@dataclass
class Ikepulse:
    """One ikepulse daemon in a namespace."""

    ns: Namespace
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return str(self.workdir / "control.sock")

    @property
    def log(self) -> Path:
        return self.workdir / "ikepulse.log"

    @property
    def config(self) -> Path:
        return self.workdir / "ikepulse.toml"

    def start(self, config: str, log_level: str = "debug", wait: float = 15) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[daemon]\ncontrol_socket = "{self.socket}"\nstate_dir = "{self.workdir}"\n'
            f"{_offload_line()}{config}"
        )
        Path(self.socket).unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(SRC))
        self.proc = self.ns.popen(
            [*IKEPULSE, "daemon", "--config", str(self.config), "--log-level", log_level],
            self.log,
            env=env,
        )
        wait_for(
            lambda: Path(self.socket).exists() or self.proc.poll() is not None,
            wait,
            "ikepulse's control socket",
        )
        if self.proc.poll() is not None:
            raise RuntimeError(f"ikepulse exited: {self.log.read_text()[-2000:]}")

    def cli(self, *args: str, check: bool = True, timeout: float = 60):
        env = dict(os.environ, PYTHONPATH=str(SRC))
        result = subprocess.run(
            [*IKEPULSE, "--socket", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"ikepulse {' '.join(args)}: {result.stderr.strip()}\n"
                f"--- daemon log ---\n{self.log.read_text()[-3000:]}"
            )
        return result

    def status(self) -> list[dict]:
        return json.loads(self.cli("status", "--json").stdout)["ike_sas"]

    def counters(self) -> dict[str, int]:
        return json.loads(self.cli("status", "--json").stdout)["counters"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            _stop(self.proc, sig)


@dataclass
class Lab:
    """``left`` and ``right`` joined by a veth, or through a ``nat`` namespace in between,
    each with a site host behind it (``lsite`` 203.0.113.2, ``rsite`` 203.0.113.66).

    Without NAT: left 198.51.100.1 <-> right 198.51.100.2.
    With NAT:    left 192.0.2.2 <-> nat 192.0.2.1 | nat 198.51.100.1 <-> right 198.51.100.2;
    left's traffic to 198.51.100.0/24 is masqueraded to 198.51.100.1.
    """

    workdir: Path
    nat: bool = False
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    namespaces: list[Namespace] = field(default_factory=list)
    processes: list = field(default_factory=list)
    spawned: list = field(default_factory=list)

    def ns(self, role: str) -> Namespace:
        return Namespace(f"ikp{self.tag}-{role}", self.spawned)

    @property
    def left(self) -> Namespace:
        return self.ns("left")

    @property
    def right(self) -> Namespace:
        return self.ns("right")

    @property
    def left_addr(self) -> str:
        return "192.0.2.2" if self.nat else "198.51.100.1"

    right_addr = "198.51.100.2"

    def _link(
        self,
        a: Namespace,
        a_if: str,
        a_addr: str,
        b: Namespace,
        b_if: str,
        b_addr: str,
        ipv6: bool = False,
    ) -> None:
        """A veth pair; IPv6 stays off unless asked for (link-local addresses appearing
        after link-up make charon send address updates that skew timing tests)."""
        run(
            "ip",
            "link",
            "add",
            a_if,
            "netns",
            a.name,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name,
        )
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            ns.run("sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6={int(not ipv6)}")
            if ipv6:  # no duplicate address detection: link-local usable at once for ND
                ns.run("sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0")
            ns.run("ip", "addr", "add", addr, "dev", ifname)
            ns.run("ip", "link", "set", ifname, "up")

    @property
    def left_site(self) -> Namespace:
        return self.ns("lsite")

    @property
    def right_site(self) -> Namespace:
        return self.ns("rsite")

    def _sites(self) -> None:
        """A site host behind each gateway, dual stack (IPv6 only on the site links):
        left 203.0.113.2 / 2001:db8:1::2 (gw .1 / ::1), right .66 / 2001:db8:2::2 (.65 / ::1).
        """
        for gw, site, gw_if, site_if, base, net6 in (
            (self.left, self.left_site, "ls0", "lh0", 0, "2001:db8:1::"),
            (self.right, self.right_site, "rs0", "rh0", 64, "2001:db8:2::"),
        ):
            net = "203.0.113.{}/26"
            self._link(
                gw, gw_if, net.format(base + 1), site, site_if, net.format(base + 2), ipv6=True
            )
            site.run("ip", "route", "add", "default", "via", f"203.0.113.{base + 1}")
            gw.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            gw.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            for ns, ifname, host in ((gw, gw_if, 1), (site, site_if, 2)):
                ns.run("ip", "-6", "addr", "add", f"{net6}{host}/64", "dev", ifname, "nodad")
            site.run("ip", "-6", "route", "add", "default", "via", f"{net6}1")

    def up(self) -> Lab:
        roles = ["left", "right", "lsite", "rsite"] + (["nat"] if self.nat else [])
        for role in roles:
            ns = self.ns(role)
            run("ip", "netns", "add", ns.name)
            self.namespaces.append(ns)
            ns.run("ip", "link", "set", "lo", "up")
        self._sites()
        if not self.nat:
            self._link(self.left, "vl0", "198.51.100.1/24", self.right, "vr0", "198.51.100.2/24")
            return self
        nat = self.ns("nat")
        self._link(self.left, "vl0", "192.0.2.2/24", nat, "vnl0", "192.0.2.1/24")
        self._link(nat, "vnr0", "198.51.100.1/24", self.right, "vr0", "198.51.100.2/24")
        self.left.run("ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.1")
        nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        rules = self.workdir / "nat.nft"
        rules.write_text(
            "table ip labnat {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority 100;\n"
            '    oifname "vnr0" masquerade\n'
            "  }\n"
            "}\n"
        )
        nat.run("nft", "-f", str(rules))
        return self

    def blackhole(self, ns: Namespace) -> None:
        """Drop every IKE and ESP-in-UDP packet entering or leaving ``ns`` (a dead peer)."""
        self._drop_ike_and_esp(ns, "blackhole", ("input", "dport"), ("output", "sport"))

    def drop_sent(self, ns: Namespace) -> None:
        """Drop every IKE and ESP-in-UDP packet ``ns`` sends, while what it receives still
        arrives (a path broken one way)."""
        self._drop_ike_and_esp(ns, "dropsent", ("output", "sport"))

    def _drop_ike_and_esp(self, ns: Namespace, table: str, *hooks: tuple[str, str]) -> None:
        """An nftables table ``table`` in ``ns`` dropping UDP 500/4500 at each (hook, port
        field) of ``hooks``."""
        chains = "".join(
            f"  chain {hook} {{\n"
            f"    type filter hook {hook} priority 0;\n"
            f"    udp {port} {{ 500, 4500 }} drop\n"
            "  }\n"
            for hook, port in hooks
        )
        rules = self.workdir / f"{table}-{ns.name}.nft"
        rules.write_text(f"table inet {table} {{\n{chains}}}\n")
        ns.run("nft", "-f", str(rules))

    def remap_nat(self) -> float:
        """Make the NAT pick another public port for left (LAB.md): a new masquerade port
        range for UDP, then its conntrack table flushed. Returns the time of the flush."""
        nat = self.ns("nat")
        nat.run("nft", "flush", "chain", "ip", "labnat", "postrouting")
        rule = ("nft", "add", "rule", "ip", "labnat", "postrouting", "oifname", "vnr0")
        nat.run(*rule, "meta", "l4proto", "udp", "masquerade", "to", ":20000-20999")
        nat.run(*rule, "masquerade")
        flushed = time.monotonic()
        nat.run(sys.executable, "-c", "from pyroute2 import Conntrack; Conntrack().flush()")
        return flushed

    def hold_ike(self, ns: Namespace) -> None:
        """Drop the IKE messages ``ns`` sends (ESP still flows) until ``release_ike``: its
        requests and answers go out again only when it retransmits."""
        rules = self.workdir / f"hold-{ns.name}.nft"
        rules.write_text(
            "table inet ikehold {\n"
            "  chain output {\n"
            "    type filter hook output priority 0;\n"
            "    udp sport 500 drop\n"
            "    udp sport 4500 @th,64,32 0 drop\n"  # non-ESP marker: IKE
            "  }\n"
            "}\n"
        )
        ns.run("nft", "-f", str(rules))

    def release_ike(self, ns: Namespace) -> None:
        ns.run("nft", "delete", "table", "inet", "ikehold")

    def charon(self, ns: Namespace, name: str = "charon") -> Charon:
        charon = Charon(ns, self.workdir / f"{name}-{ns.name}")
        self.processes.append(charon)
        return charon

    def ikepulse(self, ns: Namespace, name: str = "ikepulse") -> Ikepulse:
        daemon = Ikepulse(ns, self.workdir / f"{name}-{ns.name}")
        self.processes.append(daemon)
        return daemon

    def down(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        for proc in self.spawned:  # whatever else a test started (iperf3, ...), by PID
            _stop(proc)
        self.spawned.clear()
        for ns in reversed(self.namespaces):
            run("ip", "netns", "del", ns.name, check=False)
        self.namespaces.clear()
