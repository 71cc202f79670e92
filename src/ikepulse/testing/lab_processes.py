"""Processes in the lab's network namespaces: commands, a packet sniffer, strongSwan's charon
(with kernel-libipsec) and the ikepulse daemon, each ended by its PID (../shared/LAB.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
IKEPULSE = [sys.executable, "-m", "ikepulse.cli"]
CHARON = "/usr/lib/ipsec/charon"


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


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """End ``proc`` (one we started) with ``sig``, killing it after ``grace`` seconds."""
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
            stop_process(self.proc, sig)


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
            stop_process(self.proc, sig)
