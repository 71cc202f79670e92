"""The interop lab: network namespaces, strongSwan (charon + kernel-libipsec) and ikepulse.

Used by the interop tests and by ``ikepulse demo``. Everything is created by the caller and
removed by ``Lab.down()``; processes are ended by PID, and only 192.0.2.0/24, 198.51.100.0/24
and 203.0.113.0/24 are used (../shared/LAB.md).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The config writers and the processes live in lab_configs and lab_processes; re-exported
# for ``from ikepulse.testing.lab import``.
from ikepulse.testing.lab_configs import AGGRESSIVE_PSK_RESPONDER as AGGRESSIVE_PSK_RESPONDER
from ikepulse.testing.lab_configs import LEFT_NET as LEFT_NET
from ikepulse.testing.lab_configs import PSK as PSK
from ikepulse.testing.lab_configs import RIGHT_NET as RIGHT_NET
from ikepulse.testing.lab_configs import SIDES as SIDES
from ikepulse.testing.lab_configs import ikepulse_conf as ikepulse_conf
from ikepulse.testing.lab_configs import swanctl_conf as swanctl_conf
from ikepulse.testing.lab_processes import CHARON, Charon, Ikepulse, stop_process
from ikepulse.testing.lab_processes import IKEPULSE as IKEPULSE
from ikepulse.testing.lab_processes import SRC as SRC
from ikepulse.testing.lab_processes import Namespace as Namespace
from ikepulse.testing.lab_processes import Sniffer as Sniffer
from ikepulse.testing.lab_processes import run as run
from ikepulse.testing.lab_processes import wait_for as wait_for


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
            stop_process(proc)
        self.spawned.clear()
        for ns in reversed(self.namespaces):
            run("ip", "netns", "del", ns.name, check=False)
        self.namespaces.clear()
