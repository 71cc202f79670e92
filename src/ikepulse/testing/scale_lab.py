"""Many tunnels between two gateways in the lab: configurations, initiation in batches,
per-tunnel blackholes, the event feed and process figures. Used by ``bench/scale.py`` and
``tests/lab/test_scale_lab.py``.

Tunnel ``i`` is connection ``t{i}`` with identities ``t{i}.left`` / ``t{i}.right`` and one
child ``net`` between the single hosts ``2001:db8:10::{i+1:x}`` (left) and
``2001:db8:20::{i+1:x}`` (right), so 10,000 tunnels fit in the lab's 2001:db8::/32.

strongSwan's kernel-libipsec cannot route those (it fails to install the route for an IPv6
policy and answers TS_UNACCEPTABLE), so runs with a charon use ``family=4``: distinct /32
host *pairs*, the left host from 203.0.113.128/25 and the right one from 198.51.100.128/25
(128 x 128 pairs; the lab's links and sites use the lower halves).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ikepulse.testing.lab import PSK, Lab, Namespace

LEFT_HOSTS, RIGHT_HOSTS = "2001:db8:10::", "2001:db8:20::"
LEFT_HOSTS4, RIGHT_HOSTS4 = "203.0.113.", "198.51.100."
PAIRS4 = 128 * 128
"""How many distinct IPv4 selector pairs there are."""


def name(i: int) -> str:
    return f"t{i}"


def host(side: str, i: int, family: int = 6) -> str:
    """Tunnel ``i``'s selector (one address) on ``side``; never ``::0``, the subnet-router
    anycast address (RFC 4291 §2.6.1). IPv4: the left host varies fastest, the right one
    every 128 tunnels."""
    if family == 4:
        if not 0 <= i < PAIRS4:
            raise ValueError(f"only {PAIRS4} IPv4 selector pairs")
        if side == "left":
            return f"{LEFT_HOSTS4}{128 + i % 128}"
        return f"{RIGHT_HOSTS4}{128 + i // 128}"
    return f"{LEFT_HOSTS if side == 'left' else RIGHT_HOSTS}{i + 1:x}"


def selector(side: str, i: int, family: int = 6) -> str:
    return f"{host(side, i, family)}/{32 if family == 4 else 128}"


def ikepulse_tunnels(
    count: int,
    *,
    side: str,
    local_addr: str,
    remote_addr: str,
    liveness: str = "",
    start_action: str = "none",
    family: int = 6,
) -> str:
    """TOML for ``count`` connections on ``side``, one anonymous PSK for all of them.
    ``liveness`` is TOML put in every connection (dpd_delay, dpd_action, ...)."""
    peer = "right" if side == "left" else "left"
    blocks = []
    for i in range(count):
        blocks.append(
            f"[connections.{name(i)}]\n"
            f'local_addrs = ["{local_addr}"]\n'
            f'remote_addrs = ["{remote_addr}"]\n'
            'proposals = ["aes256gcm16-prfsha256-x25519"]\n'
            f'start_action = "{start_action}"\n'
            "mobike = false\n"
            f'local = {{ auth = "psk", id = "{name(i)}.{side}" }}\n'
            f'remote = {{ auth = "psk", id = "{name(i)}.{peer}" }}\n'
            f"{liveness}"
            f"[connections.{name(i)}.children.net]\n"
            f'local_ts = ["{selector(side, i, family)}"]\n'
            f'remote_ts = ["{selector(peer, i, family)}"]\n'
            'esp_proposals = ["aes256gcm16"]\n'
        )
    return "\n".join(blocks) + f'\n[secrets.all]\nsecret = "{PSK}"\n'


def swanctl_tunnels(
    count: int,
    *,
    side: str,
    local_addr: str,
    remote_addr: str,
    extra: str = "",
    family: int = 4,
) -> str:
    """The same ``count`` tunnels as a swanctl.conf (one setting per line)."""
    peer = "right" if side == "left" else "left"
    conns = "".join(
        f"  {name(i)} {{\n    local_addrs = {local_addr}\n    remote_addrs = {remote_addr}\n"
        "    proposals = aes256gcm16-prfsha256-x25519\n    mobike = no\n"
        f"    {extra}\n"
        f"    local {{\n      auth = psk\n      id = {name(i)}.{side}\n    }}\n"
        f"    remote {{\n      auth = psk\n      id = {name(i)}.{peer}\n    }}\n"
        "    children {\n      net {\n"
        f"        local_ts = {selector(side, i, family)}\n"
        f"        remote_ts = {selector(peer, i, family)}\n"
        "        esp_proposals = aes256gcm16\n        mode = tunnel\n      }\n    }\n  }\n"
        for i in range(count)
    )
    return f"connections {{\n{conns}}}\nsecrets {{\n  ike-all {{\n    secret = {PSK}\n  }}\n}}\n"


def add_hosts(lab: Lab, indices, family: int = 6) -> None:
    """Give both gateways the selector addresses of tunnels ``indices`` (on ``lo``), so
    pings can leave from and arrive at them. Only for the tunnels to ping: a daemon that
    starts with thousands of addresses looks them all up for every route it adds."""
    for ns, side in ((lab.left, "left"), (lab.right, "right")):
        batch = lab.workdir / f"hosts-{ns.name}.batch"
        hosts = dict.fromkeys(selector(side, i, family) for i in indices)  # pairs share hosts
        batch.write_text("".join(f"addr add {h} dev lo\n" for h in hosts))
        ns.run("ip", f"-{family}", "-force", "-batch", str(batch), timeout=120)


def ping_tunnel(lab: Lab, i: int, count: int = 1, family: int = 6) -> bool:
    """A ping from the left's selector of tunnel ``i`` to the right's arrives."""
    result = lab.left.run(
        "ping", f"-{family}", "-c", str(count), "-W", "2",
        "-I", host("left", i, family), host("right", i, family), check=False,
    )  # fmt: skip
    return result.returncode == 0


def blackhole_tunnels(lab: Lab, ns: Namespace, sas: list[dict]) -> None:
    """Drop in ``ns`` (both ways) the IKE messages and ESP packets of the IKE SAs ``sas``
    (``status --json`` entries of the left, all UDP-encapsulated on port 4500): IKE by its
    initiator SPI after the non-ESP marker (RFC 3948 §2.2), ESP by SPI. SAs created later
    (a restart) are not dropped."""
    ike = ", ".join(f"0x{sa['spi_i']}" for sa in sas)
    to_right = ", ".join(f"0x{c['spi_out']}" for sa in sas for c in sa["children"])
    to_left = ", ".join(f"0x{c['spi_in']}" for sa in sas for c in sa["children"])
    rules = lab.workdir / f"tunnels-blackhole-{ns.name}.nft"
    rules.write_text(
        "table inet tunnelhole {\n"
        "  chain input {\n    type filter hook input priority 0;\n"
        f"    udp dport 4500 @th,64,32 0 @th,96,64 {{ {ike} }} drop\n"
        f"    udp dport 4500 @th,64,32 {{ {to_right} }} drop\n  }}\n"
        "  chain output {\n    type filter hook output priority 0;\n"
        f"    udp sport 4500 @th,64,32 0 @th,96,64 {{ {ike} }} drop\n"
        f"    udp sport 4500 @th,64,32 {{ {to_left} }} drop\n  }}\n"
        "}\n"
    )
    ns.run("nft", "-f", str(rules))


def control(path: str, command: dict, timeout: float = 60.0) -> dict:
    """One request on the daemon's control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(command).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


async def _up_all(path: str, names: list[str], window: int, timeout: float) -> list[dict]:
    """``up`` for every name, ``window`` requests in flight at a time."""
    gate = asyncio.Semaphore(window)

    async def up(conn: str) -> dict:
        async with gate:
            reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
            try:
                request = {"command": "up", "connection": conn, "timeout": timeout}
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                return json.loads(await reader.readline())
            finally:
                writer.close()

    jobs = [asyncio.ensure_future(up(conn)) for conn in names]
    await asyncio.wait(jobs, timeout=timeout)
    for job in jobs:
        job.cancel()
    return [
        job.result() if job.done() and not job.cancelled() and job.exception() is None
        else {"ok": False, "error": "no answer in time"}
        for job in jobs
    ]  # fmt: skip


def up_all(path: str, names: list[str], window: int, timeout: float = 60.0) -> list[dict]:
    """Bring up ``names`` through the control socket, ``window`` at a time, all within
    ``timeout`` seconds; the answers (``ok`` false for those not answered in time)."""
    return asyncio.run(_up_all(path, names, window, timeout))


@dataclass
class EventRecorder:
    """Follows a daemon's event feed on a thread; ``records`` in arrival order."""

    path: str
    records: list[dict] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None

    def start(self) -> EventRecorder:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(self.path)
        self._sock.sendall(b'{"command": "events"}\n')
        stream = self._sock.makefile("rb")
        stream.readline()  # {"ok": true}
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()
        return self

    def _read(self, stream) -> None:
        try:
            for line in stream:
                self.records.append(json.loads(line))
        except (OSError, ValueError):
            pass

    def of(self, kind: str) -> list[dict]:
        return [r for r in list(self.records) if r.get("kind") == kind]

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()


class Tail:
    """The lines a growing log gained since the last ``read`` (whole lines only): re-reading
    a 10,000-tunnel log ten times a second took a core from the daemons under test."""

    def __init__(self, log: Path, from_end: bool = False) -> None:
        self.log = log
        self.offset = log.stat().st_size if from_end and log.exists() else 0

    def read(self) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode(errors="replace")


@dataclass(frozen=True)
class ProcStat:
    """A process's resident memory and CPU time so far (from /proc)."""

    rss_kib: int
    cpu_s: float
    at: float

    @classmethod
    def of(cls, pid: int) -> ProcStat:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return cls(rss, (int(fields[11]) + int(fields[12])) / ticks, time.monotonic())

    def cpu_share_since(self, earlier: ProcStat) -> float:
        """Share of one core used between ``earlier`` and this sample."""
        return (self.cpu_s - earlier.cpu_s) / (self.at - earlier.at)


def proc_stats(**daemons) -> dict[str, ProcStat]:
    """``ProcStat`` of each named daemon (``Charon`` or ``Ikepulse``), by the name given."""
    return {side: ProcStat.of(daemon.proc.pid) for side, daemon in daemons.items()}
