"""Prometheus metrics: a collector that reads the daemon's status at scrape time, and a small
HTTP endpoint on the event loop that renders it.

Nothing here runs on the packet path: every value is read from ``Daemon.status()`` (the same
dict ``ikepulse status --json`` prints) when Prometheus scrapes. A configured connection stays
in the scrape while it is down, with ``ikepulse_connection_up`` 0."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..config.schema import host_port
from ..core.events import ChildSaRekeyed, Event, IkeSaRekeyed, PeerDead, TunnelRestored
from ..core.peer_liveness import Liveness

log = logging.getLogger("ikepulse.metrics")

P = "ikepulse_"
LIVENESS_STATES = (*(state.value for state in Liveness), "restarting", "down")
"""A connection's liveness as ``status`` reports it: its IKE SA's, else restarting or down."""
IKE_STATES = ("CREATED", "CONNECTING", "ESTABLISHED", "DELETING", "DELETED", "FAILED")
LIVE_CHILD = ("INSTALLED", "REKEYING")
TRAFFIC = ("bytes_in", "bytes_out", "packets_in", "packets_out")
DETECTION_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds; the budget (dpd_delay + dpd_timeout) is 45 s by default, 5 s in the lab."""


class EventTally:
    """Per connection counts of what only events tell: dead-peer verdicts, restorations and
    rekeys. Fed from the daemon's event dispatch (a handful of events per tunnel life)."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)

    def on_event(self, event: Event) -> None:
        match event:
            case PeerDead():
                counts = self._counts[event.connection]
                counts["dead_peer_detections"] += 1
                counts["detection_ms"] += round(event.detected_after * 1000)
                for bound in DETECTION_BUCKETS:
                    counts[f"detection_le:{bound:g}"] += event.detected_after <= bound
            case TunnelRestored():
                self._counts[event.connection]["restores"] += 1
            case IkeSaRekeyed():
                self._counts[event.connection]["ike_rekeys"] += 1
            case ChildSaRekeyed():
                self._counts[event.connection][f"child_rekeys:{event.child}"] += 1

    def of(self, connection: str) -> dict[str, int]:
        return dict(self._counts.get(connection, {}))


def _primary(sas: list[dict]) -> dict | None:
    """The IKE SA that speaks for the connection: the newest established one, else any."""
    up = [sa for sa in sas if sa["state"] == "ESTABLISHED"]
    if up:
        return max(up, key=lambda sa: sa["established"] or 0.0)
    return sas[-1] if sas else None


def _peer(conn: dict, sa: dict | None) -> str:
    """The ``peer`` label: the configured remote address when there is one (so a tunnel's
    series stay the same while it is down), else the address its IKE SA talks to."""
    configured = conn.get("remote_addrs") or ["%any"]
    if "/" not in configured[0] and "%" not in configured[0] and configured[0] != "0.0.0.0":
        return configured[0]
    return sa["remote"]["host"] if sa else ""


class _Carry:
    """Counters of CHILD SAs that a rekey or a delete removed, kept so that the per-child
    totals stay monotonic (traffic after a SA's last scrape is lost, nothing more)."""

    def __init__(self) -> None:
        self.base: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.last: dict[str, tuple[tuple[str, str], dict[str, int]]] = {}

    def totals(self, live: dict[str, tuple[tuple[str, str], dict[str, int]]]) -> dict:
        for spi, (key, counters) in self.last.items():
            if spi not in live:
                self.base[key].update(counters)
        self.last = live
        out: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for key, base in self.base.items():
            out[key].update(base)
        for key, counters in live.values():
            out[key].update(counters)
        return out


class IkepulseCollector:
    """A custom collector (``prometheus_client``'s collect protocol) over ``status()``."""

    def __init__(self, status: Callable[[], dict], clock: Callable[[], float] = time.time):
        self._status = status
        self._clock = clock
        self._carry = _Carry()

    def describe(self) -> list[Metric]:
        return []  # no fixed series list: the scrape follows the configuration

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        now = self._clock()
        by_connection: dict[str, list[dict]] = defaultdict(list)
        for sa in status["ike_sas"]:
            by_connection[sa["connection"]].append(sa)
        yield from self._connections(status["connections"], by_connection, now)
        yield from self._children(status["connections"], by_connection)
        yield from self._daemon(status["ike_sas"], status["counters"])

    # --- per connection ----------------------------------------------------------------------

    def _connections(self, connections, by_connection, now) -> Iterator[Metric]:
        c, cp = ["connection"], ["connection", "peer"]
        configured = GaugeMetricFamily(
            P + "connection_configured", "Connection configured", labels=c
        )
        up = GaugeMetricFamily(P + "connection_up", "IKE SA established (1) or not (0)", labels=c)
        ike_sas = GaugeMetricFamily(P + "ike_sas", "IKE SAs by state", labels=[*c, "state"])
        liveness = GaugeMetricFamily(
            P + "liveness_state", "Liveness state, 1 for the current one", labels=[*c, "state"]
        )
        srtt = GaugeMetricFamily(P + "rtt_seconds", "Smoothed IKE round-trip time", labels=cp)
        sent = CounterMetricFamily(P + "probes_sent", "Liveness probes sent", labels=cp)
        unanswered = GaugeMetricFamily(
            P + "probes_unanswered", "Liveness probes now unanswered", labels=cp
        )
        idle_in = GaugeMetricFamily(
            P + "inbound_idle_seconds", "Seconds since the last inbound packet", labels=cp
        )
        idle_out = GaugeMetricFamily(
            P + "outbound_idle_seconds", "Seconds since the last outbound packet", labels=cp
        )
        detections = CounterMetricFamily(P + "dead_peer_detections", "Dead-peer verdicts", labels=c)
        each_detection = HistogramMetricFamily(
            P + "detection_seconds", "How long each dead-peer detection took", labels=c
        )
        detection = GaugeMetricFamily(
            P + "last_detection_seconds",
            "How long the last dead-peer detection took, by failed direction",
            labels=[*c, "direction", "reason"],
        )
        restores = CounterMetricFamily(P + "restores", "Tunnels restored after a death", labels=c)
        downtime = GaugeMetricFamily(
            P + "last_restore_downtime_seconds", "Downtime before the last restore", labels=c
        )
        attempts = GaugeMetricFamily(
            P + "restart_attempts", "Initiation attempts of a running restart", labels=c
        )
        ike_rekeys = CounterMetricFamily(P + "ike_rekeys", "IKE SA rekeys", labels=c)
        overlaps = GaugeMetricFamily(
            P + "overlapping_sas", "SAs beyond one per connection or child", labels=[*c, "kind"]
        )
        expiry = GaugeMetricFamily(
            P + "peer_certificate_expiry_timestamp_seconds",
            "Unix time the peer's certificate expires",
            labels=[*cp, "subject"],
        )
        for conn in connections:
            name = conn["name"]
            sas = by_connection.get(name, [])
            sa = _primary(sas)
            peer = [name, _peer(conn, sa)]
            established = sa is not None and sa["state"] == "ESTABLISHED"
            configured.add_metric([name], 1)
            up.add_metric([name], 1 if established else 0)
            states = Counter(s["state"] for s in sas)
            for state in IKE_STATES:
                ike_sas.add_metric([name, state], states[state])
            for state in LIVENESS_STATES:
                liveness.add_metric([name, state], 1 if conn["liveness"] == state else 0)
            if sa is not None:
                live = sa["liveness"]
                if live["srtt"] is not None:
                    srtt.add_metric(peer, live["srtt"])
                sent.add_metric(peer, live["probes_sent"])
                unanswered.add_metric(peer, live["probes_unanswered"])
                idle_in.add_metric(peer, max(0.0, now - live["last_inbound"]))
                idle_out.add_metric(peer, max(0.0, now - live["last_outbound"]))
                if (cert := sa.get("peer_certificate")) is not None:
                    expiry.add_metric([*peer, cert["subject"]], cert["not_after"])
            totals = conn.get("totals", {})
            detections.add_metric([name], totals.get("dead_peer_detections", 0))
            buckets = [(str(b), totals.get(f"detection_le:{b:g}", 0)) for b in DETECTION_BUCKETS]
            buckets.append(("+Inf", totals.get("dead_peer_detections", 0)))
            each_detection.add_metric([name], buckets, totals.get("detection_ms", 0) / 1000)
            restores.add_metric([name], totals.get("restores", 0))
            ike_rekeys.add_metric([name], totals.get("ike_rekeys", 0))
            if (death := conn["last_death"]) is not None:
                detection.add_metric(
                    [name, death["direction"], death["reason"]], death["detected_after"]
                )
            if (restored := conn["last_restore"]) is not None:
                downtime.add_metric([name], restored["downtime"])
            attempts.add_metric([name], conn["restart_attempts"])
            for kind, count in conn["overlaps"].items():
                overlaps.add_metric([name, kind], count)
        yield from (configured, up, ike_sas, liveness, srtt, sent, unanswered, idle_in)
        yield from (idle_out, detections, detection, restores, downtime, attempts, ike_rekeys)
        yield from (overlaps, expiry, each_detection)

    # --- per CHILD SA --------------------------------------------------------------------------

    def _children(self, connections, by_connection) -> Iterator[Metric]:
        labels = ["connection", "child", "peer"]
        configured = GaugeMetricFamily(P + "child_configured", "CHILD SA configured", labels=labels)
        up = GaugeMetricFamily(P + "child_up", "CHILD SA installed (1) or not (0)", labels=labels)
        rekeys = CounterMetricFamily(P + "child_rekeys", "CHILD SA rekeys", labels=labels)
        traffic = {
            key: CounterMetricFamily(
                P + f"child_{key}", f"{key.replace('_', ' ')} of the child's SAs", labels=labels
            )
            for key in TRAFFIC
        }
        drops = CounterMetricFamily(
            P + "child_drops",
            "Inbound ESP dropped per child, by reason",
            labels=[*labels, "reason"],
        )
        live: dict[str, tuple[tuple[str, str], dict[str, int]]] = {}
        installed: Counter[tuple[str, str]] = Counter()
        for sa in (sa for sas in by_connection.values() for sa in sas):
            for child in sa["children"]:
                key = (sa["connection"], child["name"])
                counts = {k: v for k, v in child.items() if k in TRAFFIC or k.endswith(_DROPS)}
                live[child["spi_in"]] = (key, counts)
                if sa["state"] == "ESTABLISHED" and child["state"] in LIVE_CHILD:
                    installed[key] += 1
        totals = self._carry.totals(live)
        for conn in connections:
            name, peer = conn["name"], _peer(conn, _primary(by_connection.get(conn["name"], [])))
            child_rekeys = conn.get("totals", {})
            for child in conn.get("children", ()):
                series = [name, child, peer]
                configured.add_metric(series, 1)
                up.add_metric(series, 1 if installed[(name, child)] else 0)
                rekeys.add_metric(series, child_rekeys.get(f"child_rekeys:{child}", 0))
                counts = totals.get((name, child), Counter())
                for key in TRAFFIC:
                    traffic[key].add_metric(series, counts[key])
                for key, value in sorted(counts.items()):
                    if key.endswith(_DROPS):
                        drops.add_metric([*series, _reason(key)], value)
        yield from (configured, up, rekeys, *traffic.values(), drops)

    # --- daemon-wide ---------------------------------------------------------------------------

    def _daemon(self, ike_sas: list[dict], counters: dict[str, int]) -> Iterator[Metric]:
        half_open = sum(
            1 for sa in ike_sas if not sa["initiator"] and sa["state"] in ("CREATED", "CONNECTING")
        )
        yield GaugeMetricFamily(
            P + "half_open_sas", "Responder IKE SAs still negotiating", value=half_open
        )
        yield CounterMetricFamily(
            P + "cookies_sent", "COOKIE challenges sent", value=counters.get("cookies_sent", 0)
        )
        collisions = CounterMetricFamily(P + "rekey_collisions", "Rekey collisions", labels=["sa"])
        collisions.add_metric(["ike"], counters.get("ike_rekey_collisions", 0))
        collisions.add_metric(["child"], counters.get("child_rekey_collisions", 0))
        yield collisions
        drops = CounterMetricFamily(
            P + "drops",
            "IKE datagrams and ESP packets dropped, by reason",
            labels=["layer", "reason"],
        )
        other = CounterMetricFamily(
            P + "daemon_events", "Other daemon counters, by name", labels=["counter"]
        )
        for key, value in sorted(counters.items()):
            if key.startswith("dropped_"):  # the IKE side (and runts on port 4500)
                drops.add_metric(["ike", _reason(key)], value)
            elif key.endswith(_DROPS):
                drops.add_metric(["esp", _reason(key)], value)
            elif key not in _SHOWN:
                other.add_metric([key], value)
        yield from (drops, other)


_DROPS = ("_drops", "_failures", "_dropped")
_SHOWN = frozenset({"cookies_sent", "ike_rekey_collisions", "child_rekey_collisions"})


def _reason(key: str) -> str:
    """``dropped_malformed``, ``replay_drops``, ``auth_failures`` -> ``malformed``, ``replay``,
    ``auth``; ``held_dropped`` -> ``held``."""
    key = key.removeprefix("dropped_")
    for suffix in _DROPS:
        key = key.removesuffix(suffix)
    return key


class _Failed(Exception):
    """The collector failed: answer 500 (the log has the traceback)."""


class MetricsServer:
    """``GET /metrics`` on ``metrics_listen``. The status is taken on the event loop (the
    daemon's state between two events, never while it changes); turning it into text, the
    costly part (about 0.5 ms per tunnel), runs in a worker thread so that packets and
    timers keep flowing during a scrape."""

    def __init__(self, listen: str, status: Callable[[], dict]) -> None:
        self.address = host_port(listen)
        self._status = status
        self._snapshot: dict = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(IkepulseCollector(lambda: self._snapshot))
        self._one_at_a_time = asyncio.Lock()
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; a port that cannot be had is logged, and the tunnels run without it."""
        host, port = self.address
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            log.error("no metrics endpoint: cannot listen on %s port %d: %s", host, port, exc)
            return False
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        """The port bound (the one asked for, or the one port 0 found)."""
        assert self._server is not None, "not started"
        return self._server.sockets[0].getsockname()[1]

    async def _render(self) -> bytes:
        async with self._one_at_a_time:
            try:
                self._snapshot = self._status()
                return await asyncio.to_thread(generate_latest, self.registry)
            except Exception:  # a bug in the collector must not take the daemon down
                log.exception("metrics collection failed")
                raise _Failed from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + [""]
            if method not in ("GET", "HEAD"):
                head, body = "405 Method Not Allowed", b"only GET\n"
            elif path.split("?", 1)[0] not in ("/metrics", "/"):
                head, body = "404 Not Found", b"try /metrics\n"
            else:
                head, body = "200 OK", await self._render()
            kind = CONTENT_TYPE_LATEST if head == "200 OK" else "text/plain"
            writer.write(
                f"HTTP/1.1 {head}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except _Failed:
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that does not speak HTTP or goes away: nothing to answer
        finally:
            writer.close()
