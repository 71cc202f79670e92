"""The asyncio daemon: sockets, one timer, the control socket, around one ``SaManager``."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.connection import StartAction
from ..core.events import (
    ChildSaFailed,
    ChildSaInstalled,
    ChildSaTrapped,
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    PeerDead,
    TunnelRestored,
)
from ..core.liveness import DpdAction
from ..core.sa_manager import SaManager
from ..esp.plane import Notice, PeerMoved, Trap, TrapTriggered, UnknownSpi, VolumeReached
from . import logs
from .addresses import AddressWatcher, source_for
from .connection_status import connection_status
from .control import ControlServer
from .dataplane import DataPlane
from .event_feed import EventFeed
from .event_log import describe, log_event
from .gc_steward import GcSteward, paused
from .intake import Intake
from .metrics import EventTally, MetricsServer
from .qcd_secret import load_qcd_secret
from .reload import reload_config
from .save_keys import KeyExport
from .sdnotify import Notifier
from .udp import Address, Endpoint, drain_ready
from .updown import Hooks, Runner

if TYPE_CHECKING:
    from ..config.loader import Settings

log = logging.getLogger("ikepulse.daemon")


SHUTDOWN_GRACE = 3.0
TIMER_STEP = 0.01
"""The core's deadlines are served in steps of this many seconds."""
ROUND_GAP = 0.1
"""Once rounds of IKE work come thick, they start at most this often, deadlines included
(``runtime.intake``). Idle tunnels in the lab (bench/scale.py's setup), CPU per daemon:
3,000 with rounds every 20 ms at most 5.6 %, 50 ms 3.9 %, 100 ms 2.6-3.0 %. Longer gaps
saved little more at 10,000 (7-8 % at 100-250 ms, noisy) and cost latency: the peer's
answers wait for our round, and its RTO does not expect that."""
ACTIVITY_SWEEP = 0.25
"""While ESP flows, its traffic times reach the core this often."""


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.manager = SaManager(
            settings.connections,
            secrets.SystemRandom(),
            natt_port=settings.daemon.natt_port,
            qcd_secret=load_qcd_secret(Path(settings.daemon.state_dir)),
            wall_offset=time.time() - time.monotonic(),
            export_keys=bool(settings.daemon.save_keys),
            admission=settings.daemon.admission,
            esp_vnet=settings.daemon.offload,
        )
        self.counters: Counter[str] = Counter()
        self.gc = GcSteward(self.now(), self.counters)
        self.endpoints: dict[Address, Endpoint] = {}
        self.intake = Intake(
            self._receive_ike,
            self._round_done,
            self._later,
            self.counters,
            gap=ROUND_GAP,
            clock=self.now,
            urgent=self._urgent,
        )
        self._timer: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()
        self._waiters: dict[str, list[tuple[type, asyncio.Future]]] = defaultdict(list)
        self.feed = EventFeed(self.counters)
        self.control = ControlServer(settings.daemon.control_socket, self)
        offload = settings.daemon.offload
        self.dataplane = DataPlane(
            self._send_udp, self.now, self._on_notice, self._on_traffic, offload
        )
        self.last_death: dict[str, PeerDead] = {}
        self.restored: dict[str, TunnelRestored] = {}
        self.watcher: AddressWatcher | None = None
        self.tally = EventTally()
        self.metrics: MetricsServer | None = None
        self.hooks = Hooks(self._child_config, self.manager.identities)
        self.updown = Runner(self.counters)
        self.systemd = Notifier()
        self.key_export = (
            KeyExport(settings.daemon.save_keys) if settings.daemon.save_keys else None
        )

    # --- clock -------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic()  # what asyncio's loop.time() reads, without the lookup

    @property
    def to_wall(self) -> float:
        return time.time() - self.now()

    # --- life cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        daemon = self.settings.daemon
        if self.key_export is not None:
            self.key_export.announce()
        for host in daemon.listen:
            await self._listen(host)
        log.info("listening on %s", ", ".join(f"{h}[{p}]" for h, p in self.endpoints))
        try:
            self.dataplane.start()
        except OSError as exc:
            log.warning("no ESP data plane (TUN device unavailable: %s)", exc)
        await self.control.start()
        if daemon.metrics_listen:
            self.metrics = MetricsServer(daemon.metrics_listen, self.status)
            await self.metrics.start()
        if any(connection.mobike for connection in self.settings.connections):
            self.watcher = AddressWatcher(self._on_addresses)
            await self._on_addresses(await self.watcher.start())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        for connection in self.settings.connections:
            self.start_connection(connection.name)
        self.gc.settle()  # what start-up built lives as long as the process
        self.systemd.ready(f"listening on {len(self.endpoints)} socket(s)")
        self.systemd.start_watchdog()
        flusher = loop.create_task(logs.flush_periodically())
        await self._stop.wait()
        self.systemd.stopping()
        flusher.cancel()
        await self.shutdown()

    def start_connection(self, name: str) -> None:
        """Routes or traps for its children, and the IKE SA if ``start_action = start``."""
        connection = self.manager.connection(name)
        for child in connection.children:
            if connection.start_action is StartAction.TRAP:
                self.dataplane.add_trap(Trap(connection.name, child.local_ts, child.remote_ts))
            else:
                self.dataplane.route(child.local_ts, child.remote_ts)
        if connection.start_action is StartAction.START:
            self.initiate(connection.name)

    def reload(self) -> dict:
        """Re-read the configuration file (SIGHUP, ``ikepulse reload``)."""
        return reload_config(self)

    def _child_config(self, connection: str, child: str):
        try:
            return self.manager.connection(connection).child(child)
        except KeyError:
            return None

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        """Delete every IKE SA (the peer learns it at once), then close the sockets."""
        log.info("shutting down: deleting %d IKE SA(s)", len(self.manager.sas))
        self.manager.delete_all(self.now())
        self.pump()
        deadline = self.now() + SHUTDOWN_GRACE
        while self.manager.sas and self.now() < deadline:
            await asyncio.sleep(0.05)
        self.pump()  # the last events (down hooks)
        try:
            await asyncio.wait_for(self.updown.drain(), SHUTDOWN_GRACE)
        except TimeoutError:
            log.warning("updown hooks still running at exit")
        self.feed.close()
        await self.control.close()
        if self.metrics is not None:
            await self.metrics.close()
        if self.watcher is not None:
            self.watcher.close()
        self.dataplane.close()
        for endpoint in self.endpoints.values():
            endpoint.close()
        if self._timer is not None:
            self._timer.cancel()

    # --- sockets and addresses ---------------------------------------------------------------

    async def _listen(self, host: str) -> None:
        """Bind the IKE and NAT-T ports on ``host``."""
        daemon = self.settings.daemon
        for port, natt in ((daemon.ike_port, False), (daemon.natt_port, True)):
            dataplane = self.dataplane
            endpoint = Endpoint(
                (host, port),
                natt,
                self.on_ike,
                dataplane.on_udp_esp,
                self.counters,
                dataplane.flush,
            )
            await endpoint.open()
            self.endpoints[(host, port)] = endpoint

    def _endpoint(self, local: Address) -> Endpoint | None:
        """The socket bound to ``local``, else a wildcard one on its port."""
        endpoint = self.endpoints.get(local)
        if endpoint is None:
            wildcard = "::" if ":" in local[0] else "0.0.0.0"
            endpoint = self.endpoints.get((wildcard, local[1]))
        return endpoint

    async def _on_addresses(self, addresses: tuple[str, ...]) -> None:
        """The host's addresses changed (netlink): listen on new ones, so that MOBIKE can
        move an IKE SA there (RFC 4555), then tell the core."""
        port = self.settings.daemon.ike_port
        for address in addresses:
            if self._endpoint((address, port)) is None:
                try:
                    await self._listen(address)
                except OSError as exc:
                    log.warning("cannot listen on %s: %s", address, exc)
        log.info("local addresses: %s", ", ".join(addresses) or "none")
        self.dataplane.sources.forget()
        self.manager.local_addresses_changed(addresses, self.now(), source_for)
        self.pump()

    # --- IKE I/O -----------------------------------------------------------------------------

    def on_ike(self, data: bytes, src: Address, dst: Address) -> None:
        """Queued by priority: IKE_AUTH and established SAs first, new IKE SAs after."""
        self.intake.add(data, src, dst)

    def _later(self, callback, delay: float) -> asyncio.Handle:
        loop = asyncio.get_running_loop()
        return loop.call_later(delay, callback) if delay else loop.call_soon(callback)

    def _urgent(self) -> None:
        """ESP, TUN and the IKE sockets read before and within every round of IKE work."""
        self.dataplane.poll()
        drain_ready(self.endpoints.values())

    def _receive_ike(self, data: bytes, src: Address, dst: Address) -> None:
        self.manager.receive_datagram(data, src, dst, self.now())

    def _on_notice(self, notice: Notice) -> None:
        """The data plane's news for the IKE core."""
        now = self.now()
        match notice:
            case UnknownSpi(spi, peer):
                self.manager.esp_unknown_spi(spi, peer, now)
            case VolumeReached(spi_in, octets, packets):
                self.manager.esp_usage(spi_in, octets, packets, now)
            case PeerMoved(spi_in, source):
                self.manager.esp_peer_moved(spi_in, source)
            case TrapTriggered(connection):
                self._on_trap(connection)
        self.intake.wake()  # one pump for a whole read batch: ESP with unknown SPIs can
        # come at line rate, and a pump looks at every SA

    def _on_trap(self, name: str) -> None:
        if not self.manager.find(name):
            log.info("traffic for %s triggers negotiation (trap)", name)
            self.initiate(name)
        elif self.manager.acquire(name, self.now()):
            log.info("traffic for %s triggers its missing CHILD SAs (trap)", name)
            self.pump()

    def _send_udp(self, local: Address, data: bytes, dst: Address, segment: int = 0) -> None:
        endpoint = self._endpoint((local[0], self.settings.daemon.natt_port))
        if endpoint is not None:
            endpoint.send_raw(data, dst, segment)

    def _on_timer(self) -> None:
        """An SA's deadline: wake the SAs due. ESP times come with the sweeps that traffic
        schedules (at most ACTIVITY_SWEEP old); reading every policy here as well made each
        of 10,000 spread liveness deadlines cost a walk of all SAs."""
        self._timer = None
        self.intake.began(self.now())
        # An answer that waited in a socket while the loop was busy is a sign of life: read
        # and serve it before any liveness verdict.
        self.intake.serve_established()
        self.manager.handle_timer(self.now())
        self.pump()

    def _round_done(self) -> None:
        """A round of the intake ends: the deadlines due by now are served in it too, so
        that rounds in a row (a bring-up, a flood) never hold the timer off."""
        deadline = self.manager.get_timer()
        if deadline is not None and deadline <= self.now():
            self.manager.handle_timer(self.now())
        self.pump()

    def _on_traffic(self) -> None:
        """ESP moved: look again soon, so that traffic with nothing coming back is checked
        within the on-demand wait (DESIGN.md §4) rather than at the next liveness timer."""
        asyncio.get_running_loop().call_later(ACTIVITY_SWEEP, self._sweep)

    def _sweep(self) -> None:
        self.dataplane.traffic_seen = False
        self._tick()

    def _tick(self) -> None:
        self.manager.esp_activity(self.dataplane.plane.activity())  # traffic, for liveness
        self.manager.handle_timer(self.now())
        self.pump()

    def pump(self) -> None:
        """Dispatch the core's events, send what it wants sent, re-arm the one timer.

        Events go first: the data plane must use a new CHILD SA before the message that lets
        the peer act on it leaves (a rekey answer, or the delete of the old SA, on which
        strongSwan stops accepting the old one at once)."""
        while (event := self.manager.next_event()) is not None:
            self._on_event(event)
        self.gc.observe(len(self.manager.sas), self.now())
        for datagram in self.manager.datagrams_to_send(self.now()):
            endpoint = self._endpoint(datagram.src)
            if endpoint is None:
                log.warning("no socket bound to %s[%d]", *datagram.src)
            elif datagram.keepalive:
                endpoint.send_raw(datagram.data, datagram.dst)
            else:
                endpoint.send_ike(datagram.data, datagram.dst)
        deadline = self.manager.get_timer()
        if deadline is not None:
            deadline = math.ceil(max(deadline, self.intake.next_round()) / TIMER_STEP) * TIMER_STEP
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return  # armed for it already: no cancelled handle left in the loop's heap
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_event(self, event: Event) -> None:
        self.dataplane.on_event(event)
        if self.key_export is not None:
            self.key_export.on_event(event)
        log_event(event)
        self.tally.on_event(event)
        self.feed.publish(describe(event, time.time()))
        for run in self.hooks.on_event(event):
            self.updown.start(run)
        if isinstance(event, PeerDead):
            self.last_death[event.connection] = event
            self.restored.pop(event.connection, None)
            if event.action is DpdAction.HOLD and self._known(event.connection):
                connection = self.manager.connection(event.connection)
                for child in connection.children:
                    self.dataplane.add_trap(Trap(connection.name, child.local_ts, child.remote_ts))
        elif isinstance(event, ChildSaTrapped):  # close_action = trap
            child = self._child_config(event.connection, event.child)
            if child is not None:
                self.dataplane.add_trap(Trap(event.connection, child.local_ts, child.remote_ts))
        elif isinstance(event, TunnelRestored):
            self.restored[event.connection] = event
        self._wake(event)

    def _known(self, name: str) -> bool:
        """Still configured (an SA of a connection a reload removed may still report)."""
        return any(c.name == name for c in self.manager.connections)

    # --- control commands ----------------------------------------------------------------

    def _wake(self, event: Event) -> None:
        name = getattr(event, "connection", "")
        waiting = self._waiters.get(name, [])
        for kinds, future in list(waiting):
            if isinstance(event, kinds) and not future.done():
                future.set_result(event)
                waiting.remove((kinds, future))

    def _expect(self, name: str, kinds: tuple[type, ...]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters[name].append((kinds, future))
        return future

    def initiate(self, name: str) -> None:
        connection = self.manager.connection(name)
        if not connection.remote_addrs or connection.remote_addrs[0] in ("%any", "0.0.0.0/0"):
            raise ValueError(f"connection {name!r} has no specific remote address to initiate to")
        local_host = (
            connection.local_addrs[0] if connection.local_addrs else self.settings.daemon.listen[0]
        )
        local = (local_host, self.settings.daemon.ike_port)
        remote = (connection.remote_addrs[0], connection.remote_port)
        self.manager.initiate(name, local, remote, self.now())
        self.pump()

    async def up(self, name: str, timeout: float) -> dict:
        if self.manager.find(name):
            return {"ok": True, "message": f"{name} is already up or connecting"}
        done = self._expect(name, (ChildSaInstalled, ChildSaFailed, IkeSaFailed))
        established = self._expect(name, (IkeSaEstablished,))
        self.initiate(name)
        try:
            event = await asyncio.wait_for(done, timeout)
        except TimeoutError:
            if established.done() and not self.manager.connection(name).children:
                return {"ok": True, "message": f"{name} established"}
            return {"ok": False, "error": f"{name}: no outcome within {timeout:.0f}s"}
        if isinstance(event, ChildSaInstalled):
            return {"ok": True, "message": f"{name} established, CHILD SA {event.child} installed"}
        return {"ok": False, "error": f"{name}: {event.reason}"}

    async def down(self, name: str, timeout: float) -> dict:
        self.manager.connection(name)
        if not self.manager.delete(name, self.now()):
            return {"ok": True, "message": f"{name} is not up"}
        done = self._expect(name, (IkeSaDeleted, IkeSaFailed))  # events go out in pump()
        self.pump()
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return {"ok": False, "error": f"{name}: the peer did not confirm the delete"}
        return {"ok": True, "message": f"{name} deleted"}

    def rekey(self, name: str, child: str | None, ike: bool, reauth: bool = False) -> dict:
        """Renew the CHILD SAs (all, or those named ``child``), the IKE SA or, with
        ``reauth``, everything; reports what was actually started."""
        if not self.manager.find(name):
            self.manager.connection(name)
            return {"ok": False, "error": f"{name} is not up"}
        candidates, started = self.manager.renew(name, self.now(), child, ike, reauth)
        self.pump()
        if reauth or ike:
            if not started:
                return {"ok": False, "error": f"{name}: not established, or already renewing"}
            what = "reauthenticating" if reauth else "rekeying the IKE SA of"
            return {"ok": True, "message": f"{what} {name}"}
        if not candidates:
            named = f" named {child!r}" if child else ""
            return {"ok": False, "error": f"{name} has no CHILD SA{named}"}
        if not started:
            return {"ok": False, "error": f"{name}: its CHILD SAs are being rekeyed already"}
        return {"ok": True, "message": f"rekeying {', '.join(started)} of {name}"}

    def ike_sas(self) -> list[dict]:
        """Every IKE SA as core/status.py writes it, with its CHILD SAs' traffic."""
        to_wall = self.to_wall
        return self.manager.status(to_wall, lambda spi: self.dataplane.plane.status(spi, to_wall))

    def status(self) -> dict:
        with paused():  # about a hundred dicts and lists per SA, none of them garbage
            return {
                "ok": True,
                "ike_sas": self.ike_sas(),
                "connections": [
                    connection_status(
                        self.manager,
                        c.name,
                        self.last_death.get(c.name),
                        self.restored.get(c.name),
                        self.tally.of(c.name),
                    )
                    for c in self.settings.connections
                ],
                "counters": dict(self.manager.counters + self.counters + self.dataplane.counters),
            }
