"""Prometheus metrics: the collector's text output, parsed as Prometheus would parse it."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ikepulse.config.loader import ConfigError, parse_config
from ikepulse.core.events import ChildSaRekeyed, IkeSaRekeyed, PeerDead, TunnelRestored
from ikepulse.core.liveness import DpdAction
from ikepulse.runtime.metrics import EventTally, IkepulseCollector, MetricsServer
from ikepulse.testing.loopback import QUIET, RIGHT, established

EXAMPLE = """
[daemon]

[connections.site]
remote_addrs = ["198.51.100.2"]
local = { auth = "psk", id = "left.example" }
remote = { auth = "psk", id = "right.example" }

[secrets.site]
ids = ["left.example", "right.example"]
secret = "0123456789abcdef"
"""


def connection(name: str, remote: str, liveness: str, tally: EventTally, **extra) -> dict:
    """One entry of ``Daemon.status()["connections"]``."""
    return {
        "name": name,
        "liveness": liveness,
        "restart_attempts": 0,
        "overlaps": {"ike_sas": 0, "child_sas": 0},
        "remote_addrs": [remote],
        "children": ["lan"],
        "totals": tally.of(name),
        "last_death": None,
        "last_restore": None,
        **extra,
    }


def scrape(collector: IkepulseCollector) -> dict[tuple[str, frozenset], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def tunnel():
    """An established IKE SA with CHILD SA ``lan`` of connection ``site`` (peer known from
    the SA), and a second connection ``spare`` that is configured but never came up."""
    a, _, sa, clock = established(QUIET)
    traffic: dict[str, dict] = {}
    tally = EventTally()
    state = {"counters": {}, "site": {}, "rewrite": lambda status: status}

    def status() -> dict:
        return state["rewrite"](
            {
                "ike_sas": a.manager.status(0.0, lambda spi: traffic.get(spi.hex(), {})),
                "connections": [
                    connection("site", "%any", a.manager.liveness("site"), tally, **state["site"]),
                    connection("spare", "198.51.100.9", "down", tally),
                ],
                "counters": state["counters"],
            }
        )

    spi_in = a.manager.status(0.0, lambda spi: {})[0]["children"][0]["spi_in"]
    collector = IkepulseCollector(status, clock=lambda: clock.now + 2.5)
    return collector, traffic, spi_in, tally, state, status


def test_an_up_tunnel_and_a_configured_down_one(tunnel):
    collector, traffic, spi_in, *_ = tunnel
    traffic[spi_in] = {"bytes_in": 840, "bytes_out": 420, "packets_in": 10, "packets_out": 5}
    samples = scrape(collector)
    peer = RIGHT[0]
    assert value(samples, "ikepulse_connection_up", connection="site") == 1
    assert value(samples, "ikepulse_connection_up", connection="spare") == 0
    assert value(samples, "ikepulse_connection_configured", connection="spare") == 1
    assert value(samples, "ikepulse_child_up", connection="site", child="lan", peer=peer) == 1
    spare = {"connection": "spare", "child": "lan", "peer": "198.51.100.9"}
    assert value(samples, "ikepulse_child_up", **spare) == 0
    assert value(samples, "ikepulse_child_bytes_in_total", **spare) == 0
    site = {"connection": "site", "child": "lan", "peer": peer}
    assert value(samples, "ikepulse_child_bytes_in_total", **site) == 840
    assert value(samples, "ikepulse_child_packets_out_total", **site) == 5
    assert value(samples, "ikepulse_ike_sas", connection="site", state="ESTABLISHED") == 1
    assert value(samples, "ikepulse_liveness_state", connection="site", state="alive") == 1
    assert value(samples, "ikepulse_liveness_state", connection="spare", state="down") == 1
    assert value(samples, "ikepulse_liveness_state", connection="spare", state="alive") == 0
    assert value(samples, "ikepulse_inbound_idle_seconds", connection="site", peer=peer) == 2.5
    assert value(samples, "ikepulse_probes_sent_total", connection="site", peer=peer) == 0
    assert value(samples, "ikepulse_dead_peer_detections_total", connection="spare") == 0
    rtt = {dict(labels)["connection"] for name, labels in samples if name.endswith("rtt_seconds")}
    assert rtt <= {"site"}  # no IKE SA, no round trips to tell


def test_child_totals_survive_the_sa_that_carried_them(tunnel):
    """A rekey replaces the CHILD SA: its counts stay in the child's totals."""
    collector, traffic, spi_in, _, state, _ = tunnel
    traffic[spi_in] = {"bytes_in": 100, "packets_in": 1, "replay_drops": 2}
    scrape(collector)
    old = {"bytes_in": 100, "packets_in": 1, "replay_drops": 2}
    traffic[spi_in] = {}

    def rekeyed(status: dict) -> dict:  # the old SPI gone, a new one carrying traffic
        status["ike_sas"][0]["children"][0].update(spi_in="feedf00d", bytes_in=5, packets_in=1)
        return status

    state["rewrite"] = rekeyed
    samples = scrape(collector)
    site = {"connection": "site", "child": "lan", "peer": RIGHT[0]}
    assert value(samples, "ikepulse_child_bytes_in_total", **site) == old["bytes_in"] + 5
    assert value(samples, "ikepulse_child_packets_in_total", **site) == 2
    assert value(samples, "ikepulse_child_drops_total", reason="replay", **site) == 2


def test_detection_restore_and_daemon_counters(tunnel):
    collector, _, _, tally, state, _ = tunnel
    tally.on_event(PeerDead("site", b"\0" * 8, "no answer", 7.25, DpdAction.RESTART, "silent"))
    tally.on_event(TunnelRestored("site", 3.5, 2))
    state["site"] = {
        "last_death": {
            "reason": "no answer",
            "direction": "silent",
            "detected_after": 7.25,
            "action": "restart",
        },
        "last_restore": {"downtime": 3.5, "attempts": 2},
        "overlaps": {"ike_sas": 1, "child_sas": 0},
    }
    state["counters"] = {
        "dropped_malformed": 3,
        "unknown_spi_drops": 2,
        "dropped_unknown_spi": 5,
        "cookies_sent": 4,
        "ike_rekey_collisions": 1,
        "retransmits_sent": 9,
    }
    samples = scrape(collector)
    assert value(samples, "ikepulse_dead_peer_detections_total", connection="site") == 1
    last = {"connection": "site", "direction": "silent", "reason": "no answer"}
    assert value(samples, "ikepulse_last_detection_seconds", **last) == 7.25
    tally.on_event(PeerDead("site", b"\1" * 8, "no answer", 1.5, DpdAction.RESTART, "outbound"))
    samples = scrape(collector)
    bucket = "ikepulse_detection_seconds_bucket"
    assert value(samples, bucket, connection="site", le="1.0") == 0
    assert value(samples, bucket, connection="site", le="2.0") == 1
    assert value(samples, bucket, connection="site", le="10.0") == 2
    assert value(samples, bucket, connection="site", le="+Inf") == 2
    assert value(samples, "ikepulse_detection_seconds_sum", connection="site") == 8.75
    assert value(samples, "ikepulse_restores_total", connection="site") == 1
    assert value(samples, "ikepulse_last_restore_downtime_seconds", connection="site") == 3.5
    assert value(samples, "ikepulse_overlapping_sas", connection="site", kind="ike_sas") == 1
    assert value(samples, "ikepulse_drops_total", layer="ike", reason="malformed") == 3
    assert value(samples, "ikepulse_drops_total", layer="esp", reason="unknown_spi") == 2
    assert value(samples, "ikepulse_drops_total", layer="ike", reason="unknown_spi") == 5
    assert value(samples, "ikepulse_cookies_sent_total") == 4
    assert value(samples, "ikepulse_rekey_collisions_total", sa="ike") == 1
    assert value(samples, "ikepulse_daemon_events_total", counter="retransmits_sent") == 9
    assert value(samples, "ikepulse_half_open_sas") == 0


def test_the_endpoint_serves_metrics_and_nothing_else(tunnel):
    *_, status = tunnel

    async def get(port: int, path: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
        return answer

    async def main() -> tuple[bytes, bytes, bool]:
        server = MetricsServer("127.0.0.1:0", status)  # any free port
        assert await server.start()
        try:
            port = server.port
            taken = await MetricsServer(f"127.0.0.1:{port}", status).start()
            return await get(port, "/metrics"), await get(port, "/secret"), taken
        finally:
            await server.close()

    ok, missing, taken = asyncio.run(main())
    assert not taken  # a port in use is refused, not raised
    head, _, body = ok.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"ikepulse_connection_up", "ikepulse_child_bytes_in"} <= names
    assert missing.startswith(b"HTTP/1.1 404")


def test_a_failing_collection_answers_500_and_the_server_goes_on(caplog):
    calls = []

    def status() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("ike_sas")
        return {"ike_sas": [], "connections": [], "counters": {}}

    async def get(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    async def main() -> tuple[bytes, bytes]:
        server = MetricsServer("127.0.0.1:0", status)
        await server.start()
        try:
            return await get(server.port), await get(server.port)
        finally:
            await server.close()

    failed, ok = asyncio.run(main())
    assert failed.startswith(b"HTTP/1.1 500") and ok.startswith(b"HTTP/1.1 200")
    assert "metrics collection failed" in caplog.text


def test_metrics_listen_is_off_unless_set_and_checked():
    assert parse_config(EXAMPLE, "ex.toml").daemon.metrics_listen is None
    listen = EXAMPLE.replace("[daemon]\n", '[daemon]\nmetrics_listen = "[::1]:9720"\n')
    assert parse_config(listen, "ex.toml").daemon.metrics_listen == "[::1]:9720"
    with pytest.raises(ConfigError, match="metrics_listen"):
        parse_config(listen.replace("[::1]:9720", "localhost"), "ex.toml")


def test_rekeys_half_open_sas_and_certificate_expiry(tunnel):
    collector, _, spi_in, tally, state, _ = tunnel
    tally.on_event(ChildSaRekeyed("site", "lan", bytes.fromhex(spi_in), b"\1\2\3\4"))
    tally.on_event(ChildSaRekeyed("site", "lan", b"\1\2\3\4", b"\5\6\7\x08"))
    tally.on_event(IkeSaRekeyed("site", b"\0" * 8, b"\1" * 8, b"\2" * 8, b"\3" * 8))

    def with_certificate_and_a_half_open_sa(status: dict) -> dict:
        up = status["ike_sas"][0]
        up["peer_certificate"] = {"subject": "CN=right.example", "not_after": 1893456000.0}
        half_open = dict(up, connection="spare", initiator=False, state="CONNECTING")
        status["ike_sas"].append(half_open)
        return status

    state["rewrite"] = with_certificate_and_a_half_open_sa
    samples = scrape(collector)
    site = {"connection": "site", "peer": RIGHT[0]}
    assert value(samples, "ikepulse_child_rekeys_total", child="lan", **site) == 2
    assert value(samples, "ikepulse_ike_rekeys_total", connection="site") == 1
    assert value(samples, "ikepulse_half_open_sas") == 1
    assert value(samples, "ikepulse_connection_up", connection="spare") == 0
    assert value(samples, "ikepulse_ike_sas", connection="spare", state="CONNECTING") == 1
    expiry = {**site, "subject": "CN=right.example"}
    assert value(samples, "ikepulse_peer_certificate_expiry_timestamp_seconds", **expiry) == (
        1893456000.0
    )
