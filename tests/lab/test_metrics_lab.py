"""Prometheus metrics over a tunnel's life against strongSwan: up, blackholed and detected,
restored; and a configured connection that never comes up, present with up 0.

left 198.51.100.1 (ikepulse, metrics on 127.0.0.1:9720)  ==  right (strongSwan)
                  connection "spare" to 198.51.100.9 (nobody there)
"""

from __future__ import annotations

import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_dataplane import ping

from ikepulse.testing.lab import ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

LISTEN = "127.0.0.1:9720"
SPARE = """
[connections.spare]
remote_addrs = ["198.51.100.9"]
local = { auth = "psk", id = "left.example" }
remote = { auth = "psk", id = "spare.example" }

[connections.spare.children.net]
local_ts = ["203.0.113.0/26"]
remote_ts = ["203.0.113.128/26"]

[secrets.spare]
ids = ["left.example", "spare.example"]
secret = "0123456789abcdef"
"""
FETCH = f"import urllib.request; print(urllib.request.urlopen('http://{LISTEN}/metrics').read().decode())"


def scrape(lab) -> dict[tuple[str, frozenset], float]:
    """The endpoint's samples as Prometheus parses them (scraped inside ``left``)."""
    text = lab.left.run(sys.executable, "-c", FETCH).stdout
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_follow_a_tunnel_through_death_and_restore(lab):
    lab.charon(lab.right).start(swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr))
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(
        local_addr=lab.left_addr,
        remote_addr=lab.right_addr,
        extra='dpd_delay = "2s"\ndpd_timeout = "3s"\ndpd_action = "restart"\n',
    )
    daemon.start(f'metrics_listen = "{LISTEN}"\n{conf}{SPARE}')
    lan = {"connection": "lab", "child": "lan", "peer": lab.right_addr}
    spare = {"connection": "spare", "child": "net", "peer": "198.51.100.9"}

    before = scrape(lab)  # configured, nothing up yet
    assert value(before, "ikepulse_connection_up", connection="lab") == 0
    assert value(before, "ikepulse_child_up", **lan) == 0

    daemon.cli("up", "lab")
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    up = scrape(lab)
    assert value(up, "ikepulse_connection_up", connection="lab") == 1
    assert value(up, "ikepulse_child_up", **lan) == 1
    assert value(up, "ikepulse_liveness_state", connection="lab", state="alive") == 1
    assert value(up, "ikepulse_child_bytes_out_total", **lan) >= 3 * 84
    assert value(up, "ikepulse_child_packets_in_total", **lan) >= 3
    assert value(up, "ikepulse_inbound_idle_seconds", connection="lab", peer=lab.right_addr) < 5
    assert value(up, "ikepulse_dead_peer_detections_total", connection="lab") == 0
    assert value(up, "ikepulse_connection_up", connection="spare") == 0
    assert value(up, "ikepulse_connection_configured", connection="spare") == 1
    assert value(up, "ikepulse_child_up", **spare) == 0
    assert value(up, "ikepulse_liveness_state", connection="spare", state="down") == 1

    lab.blackhole(lab.right)
    wait_for(
        lambda: value(scrape(lab), "ikepulse_dead_peer_detections_total", connection="lab") == 1,
        10,
        "the detection in the scrape",
    )
    dead = scrape(lab)
    assert value(dead, "ikepulse_connection_up", connection="lab") == 0
    assert value(dead, "ikepulse_child_up", **lan) == 0
    state = {
        s: value(dead, "ikepulse_liveness_state", connection="lab", state=s)
        for s in ("dead", "restarting")
    }
    assert sum(state.values()) == 1, state
    detections = [
        (labels, v)
        for (name, labels), v in dead.items()
        if name == "ikepulse_last_detection_seconds"
    ]
    assert len(detections) == 1
    labels, took = detections[0]
    assert dict(labels)["connection"] == "lab" and 0 < took <= 5.05
    assert value(dead, "ikepulse_connection_up", connection="spare") == 0

    lab.right.run("nft", "delete", "table", "inet", "blackhole")
    wait_for(
        lambda: value(scrape(lab), "ikepulse_connection_up", connection="lab") == 1,
        30,
        "the restored tunnel in the scrape",
    )
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    restored = scrape(lab)
    assert value(restored, "ikepulse_child_up", **lan) == 1
    assert value(restored, "ikepulse_restores_total", connection="lab") == 1
    assert value(restored, "ikepulse_dead_peer_detections_total", connection="lab") == 1
    assert value(restored, "ikepulse_liveness_state", connection="lab", state="alive") == 1
    assert value(restored, "ikepulse_child_bytes_out_total", **lan) >= value(
        up, "ikepulse_child_bytes_out_total", **lan
    )
    assert value(restored, "ikepulse_connection_up", connection="spare") == 0
