"""updown hooks: run a child's ``updown`` command with strongSwan's environment.

strongSwan's updown plugin runs the command once per policy (local x remote selector) when a
CHILD SA is installed (``up-*``) or removed (``down-*``), never on a rekey: the new SA
inherits the tunnel. ``Hooks`` mirrors that, and treats any SA that takes over selectors a
live SA of the same child already holds (a rekey, a make-before-break reauthentication, the
redundant SA of a collision) as the same tunnel. It decides; ``Runner`` executes: each run in
its own process (``/bin/sh -c``, as strongSwan does), without blocking the daemon, killed
after the child's timeout, runs for one tunnel one after the other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.connection import ChildConfig, Updown
from ..core.events import (
    ChildSaDeleted,
    ChildSaInstalled,
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaRekeyed,
    PeerDead,
    TunnelRestored,
)
from ..wire.traffic_selectors import TrafficSelector

log = logging.getLogger("ikepulse.updown")

ICMP, ICMPV6 = 1, 58
EXTRA_VERBS = ("peer-dead", "restored")
"""Ours, given only to commands with ``updown_events = true``: a strongSwan script answers an
unknown verb with an error."""


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a hook."""

    tunnel_id: str
    updown: Updown
    env: dict[str, str]


def subnet(ts: TrafficSelector) -> str:
    """The selector's range as ``address/prefix``, widened to the smallest covering subnet
    when it is no subnet (as strongSwan's updown approximates it)."""
    bits = ts.start.max_prefixlen
    prefix = bits - (int(ts.start) ^ int(ts.end)).bit_length()
    network = ipaddress.ip_network(f"{ts.start}/{prefix}", strict=False)
    return f"{network.network_address}/{prefix}"


def port(me: TrafficSelector, other: TrafficSelector, local: bool) -> str:
    """``PLUTO_MY_PORT`` / ``PLUTO_PEER_PORT``: a port, a ``from:to`` range, or for ICMP the
    type (local) and code (remote) packed in the selector's port (RFC 4301 §4.4.1.3)."""
    if max(me.protocol, other.protocol) in (ICMP, ICMPV6):
        value = max(me.start_port, other.start_port)
        return str(value >> 8 if local else value & 0xFF)
    ts = me if local else other
    if ts.start_port == ts.end_port or (ts.start_port == 0 and ts.end_port == 65535):
        return str(ts.start_port)
    return f"{ts.start_port}:{ts.end_port}"


def policy_env(
    event: ChildSaInstalled,
    my_ts: TrafficSelector,
    other_ts: TrafficSelector,
    *,
    reqid: int,
    unique_id: int,
    my_id: str,
    peer_id: str,
) -> tuple[str, dict[str, str]]:
    """(verb suffix such as ``-client-v6``, environment without ``PLUTO_VERB``) for one policy
    of the CHILD SA, with the names and values strongSwan's updown plugin gives."""
    me = ipaddress.ip_address(event.local[0])
    is_host = my_ts.start == my_ts.end == me
    is_v6 = (me.version if is_host else my_ts.start.version) == 6
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PLUTO_VERSION": "1.1",
        "PLUTO_CONNECTION": event.child,  # strongSwan: the CHILD config's name
        "IKEPULSE_CONNECTION": event.connection,
        "PLUTO_INTERFACE": "unknown",
        "PLUTO_REQID": str(reqid),
        "PLUTO_PROTO": "esp",
        "PLUTO_UNIQUEID": str(unique_id),
        "PLUTO_ME": event.local[0],
        "PLUTO_MY_ID": my_id,
        "PLUTO_MY_CLIENT": subnet(my_ts),
        "PLUTO_MY_PORT": port(my_ts, other_ts, True),
        "PLUTO_MY_PROTOCOL": str(my_ts.protocol),
        "PLUTO_PEER": event.remote[0],
        "PLUTO_PEER_ID": peer_id,
        "PLUTO_PEER_CLIENT": subnet(other_ts),
        "PLUTO_PEER_PORT": port(my_ts, other_ts, False),
        "PLUTO_PEER_PROTOCOL": str(other_ts.protocol),
        "IKEPULSE_TUNNEL_ID": f"{event.connection}/{event.child}",
        "IKEPULSE_CHILD": event.child,
        "IKEPULSE_SPI_IN": event.spi_in.hex(),
        "IKEPULSE_SPI_OUT": event.spi_out.hex(),
    }
    if event.udp_encap:
        env["PLUTO_UDP_ENC"] = str(event.remote[1])
    return ("-host" if is_host else "-client") + ("-v6" if is_v6 else ""), env


@dataclass(slots=True)
class _Tunnel:
    """A live CHILD SA with a hook, as the hooks know it."""

    key: tuple
    ike: tuple[str, str]
    updown: Updown
    policies: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class Hooks:
    """Turns the core's events into hook runs (sans-IO: ``on_event`` returns them).

    ``child_config(connection, child)`` gives the running configuration of a child (None when
    it is gone); ``identities(connection, remote)`` the IKE SA's (ours, peer's) identity."""

    def __init__(
        self,
        child_config: Callable[[str, str], ChildConfig | None],
        identities: Callable[[str, tuple[str, int]], tuple[str, str] | None],
    ) -> None:
        self._child_config = child_config
        self._identities = identities
        self._tunnels: dict[bytes, _Tunnel] = {}
        self._known: dict[tuple, _Tunnel] = {}
        """The last SA of each tunnel, kept after it went down (a dead peer's SAs are gone
        by the time its ``PeerDead`` comes)."""
        self._live: dict[tuple, set[bytes]] = defaultdict(set)
        self._reqids: dict[tuple[str, str], int] = {}
        self._ike: dict[bytes, tuple[str, str]] = {}
        self._unique: dict[tuple[str, str], int] = {}
        self._next_unique = 0

    def _new_unique(self, key: tuple[str, str]) -> None:
        self._next_unique += 1
        self._unique[key] = self._next_unique

    def on_event(self, event: Event) -> list[Run]:
        match event:
            case IkeSaEstablished():
                key = (event.connection, event.remote[0])
                self._ike[event.spi_i] = key
                self._new_unique(key)  # strongSwan: a new unique id per IKE SA
            case IkeSaRekeyed():
                key = self._ike.pop(event.old_spi_i, None)
                if key is not None:
                    self._ike[event.spi_i] = key
                    self._new_unique(key)
            case IkeSaDeleted() | IkeSaFailed():
                self._ike.pop(event.spi_i, None)
            case ChildSaInstalled():
                return self._installed(event)
            case ChildSaDeleted():
                return self._deleted(event)
            case PeerDead():
                extra = {"IKEPULSE_DETECTED_AFTER": f"{event.detected_after:.3f}"}
                extra["IKEPULSE_REASON"] = event.reason
                return self._extra("peer-dead", event.connection, extra)
            case TunnelRestored():
                extra = {"IKEPULSE_DOWNTIME": f"{event.downtime:.3f}"}
                return self._extra("restored", event.connection, extra)
        return []

    def _installed(self, event: ChildSaInstalled) -> list[Run]:
        config = self._child_config(event.connection, event.child)
        if config is None or config.updown is None:
            return []
        ids = self._identities(event.connection, event.remote) or ("", "")
        ike = (event.connection, event.remote[0])
        key = (event.connection, event.child, ids[1], event.local_ts, event.remote_ts)
        if event.replaces in self._tunnels:  # a rekey keeps the tunnel, whatever its TS
            key = self._tunnels[event.replaces].key
        reqid = self._reqids.setdefault((event.connection, event.child), len(self._reqids) + 1)
        tunnel = _Tunnel(key, ike, config.updown)
        unique = self._unique.get(ike, 0)
        for my_ts in event.local_ts:
            for other_ts in event.remote_ts:
                tunnel.policies.append(
                    policy_env(
                        event,
                        my_ts,
                        other_ts,
                        reqid=reqid,
                        unique_id=unique,
                        my_id=ids[0],
                        peer_id=ids[1],
                    )
                )
        self._tunnels[event.spi_in] = self._known[key] = tunnel
        live = self._live[key]
        successor = bool(live) or event.replaces in self._tunnels
        live.add(event.spi_in)
        return [] if successor else self._runs(tunnel, "up", suffix=True)

    def _deleted(self, event: ChildSaDeleted) -> list[Run]:
        tunnel = self._tunnels.pop(event.spi_in, None)
        if tunnel is None:
            return []
        live = self._live[tunnel.key]
        live.discard(event.spi_in)
        if live:
            return []  # another SA of the tunnel carries on (rekey, reauthentication)
        del self._live[tunnel.key]
        return self._runs(tunnel, "down", suffix=True)

    def _runs(self, tunnel: _Tunnel, verb: str, suffix: bool, extra=None) -> list[Run]:
        unique = str(self._unique.get(tunnel.ike, 0))  # the IKE SA now carrying it
        runs = []
        for ending, env in tunnel.policies:
            full = {**env, "PLUTO_VERB": verb + (ending if suffix else ""), **(extra or {})}
            full["PLUTO_UNIQUEID"] = unique
            runs.append(Run(env["IKEPULSE_TUNNEL_ID"], tunnel.updown, full))
        return runs

    def _extra(self, verb: str, connection: str, extra: dict[str, str]) -> list[Run]:
        """``peer-dead`` / ``restored`` for the connection's opted-in tunnels, once each."""
        runs = []
        for key, tunnel in self._known.items():
            if key[0] == connection and tunnel.updown.events:
                runs += self._runs(tunnel, verb, suffix=False, extra=extra)[:1]
        return runs


class Runner:
    """Runs hooks as child processes; ``counters`` counts runs, failures and timeouts."""

    def __init__(self, counters: Counter[str]) -> None:
        self.counters = counters
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task] = set()

    def start(self, run: Run) -> None:
        task = asyncio.get_running_loop().create_task(self._serialized(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the runs in progress (at shutdown, so that down hooks finish)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _serialized(self, run: Run) -> None:
        async with self._locks[run.tunnel_id]:
            await self.execute(run)

    async def execute(self, run: Run) -> int | None:
        """Run it; its exit status, None if it could not start or was killed."""
        verb = run.env["PLUTO_VERB"]
        self.counters["updown_runs"] += 1
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                run.updown.command,
                env=run.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill what it spawned
            )
        except OSError as exc:
            self.counters["updown_failures"] += 1
            log.warning("updown %s for %s: cannot start: %s", verb, run.tunnel_id, exc)
            return None
        try:
            output, _ = await asyncio.wait_for(process.communicate(), run.updown.timeout)
        except TimeoutError:
            self.counters["updown_timeouts"] += 1
            log.warning(
                "updown %s for %s: still running after %gs, killed (pid %d)",
                verb,
                run.tunnel_id,
                run.updown.timeout,
                process.pid,
            )
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
            return None
        for line in output.decode("utf-8", "replace").splitlines():
            log.info("updown: %s", line)
        if process.returncode != 0:
            self.counters["updown_failures"] += 1
            log.warning(
                "updown %s for %s: %r exited with %d",
                verb,
                run.tunnel_id,
                run.updown.command,
                process.returncode,
            )
        return process.returncode
