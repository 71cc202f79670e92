"""The event stream and the live view against a real strongSwan.

left 198.51.100.1 (ikepulse, dpd_delay 2s, dpd_timeout 3s, restart)  ==  right (strongSwan)

  ikepulse events --json  -- follows -->  up ... blackhole ... peer-dead ... lift ... restored
  tmux: ikepulse top      -- capture-pane -->  lab  ESTABLISHED  alive  ike-up
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from ikepulse.cli.client import request
from ikepulse.testing.lab import IKEPULSE, SRC, ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

DPD = 'dpd_delay = "2s"\ndpd_timeout = "3s"\ndpd_action = "restart"\n'


def setup(lab):
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=DPD))
    return charon, daemon


def subscribers(daemon) -> int:
    return request(daemon.socket, {"command": "recent_events"})["subscribers"]


def test_events_follow_a_tunnel_through_death_and_restore(lab, tmp_path):
    _, daemon = setup(lab)
    out = tmp_path / "events.jsonl"
    follower = lab.left.popen(
        [*IKEPULSE, "--socket", daemon.socket, "events", "--json"],
        out,
        env=dict(os.environ, PYTHONPATH=str(SRC)),
    )

    def records() -> list[dict]:
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]

    def kinds() -> list[str]:
        return [r["kind"] for r in records()]

    try:
        wait_for(lambda: subscribers(daemon) == 1, 10, "the follower to subscribe")
        daemon.cli("up", "lab")
        wait_for(lambda: "child-up" in kinds(), 5, "the up events")
        lab.blackhole(lab.right)
        wait_for(lambda: "peer-dead" in kinds(), 10, "the peer-dead event")
        lab.right.run("nft", "delete", "table", "inet", "blackhole")
        wait_for(lambda: "restored" in kinds(), 60, "the restored event")
    finally:
        follower.terminate()
        follower.wait(5)
    got = records()
    order = kinds()
    assert order.index("ike-up") < order.index("child-up") < order.index("peer-dead")
    assert order.index("peer-dead") < order.index("restored")
    up = next(r for r in got if r["kind"] == "ike-up")
    assert up["connection"] == "lab" and up["initiator"] is True
    dead = next(r for r in got if r["kind"] == "peer-dead")
    assert dead["severity"] == "warning"
    assert dead["direction"] == "silent" and dead["cause"] == "peer-dead-silent"
    assert 0 < dead["detected_after"] <= 5.05  # dpd_delay + dpd_timeout, timer slack
    assert dead["action"] == "restart" and dead["ike_sa"] == up["ike_sa"]
    restored = next(r for r in got if r["kind"] == "restored")
    assert restored["downtime"] > 0 and restored["attempts"] >= 1
    # the new IKE SA after the restore is announced too, after the restore's start
    assert any(r["kind"] == "ike-up" and r["ike_sa"] != up["ike_sa"] for r in got)


def test_top_in_tmux_shows_the_tunnel_and_its_events(lab, tmp_path):
    _, daemon = setup(lab)
    daemon.cli("up", "lab")
    server = str(tmp_path / "tmux.sock")  # our own tmux server, ended below
    command = shlex.join(
        [
            "env",
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            f"PYTHONPATH={SRC}",
            *IKEPULSE,
            "--socket",
            daemon.socket,
            "top",
        ]
        + ["--interval", "0.3"]
    )
    tmux = ["tmux", "-S", server]
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "top", "-x", "180", "-y", "40", command], check=True
    )

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True
        ).stdout

    try:
        wait_for(lambda: "child-up" in screen(), 10, "the live view")
        wait_for(lambda: "in " in screen() and "B/s" in screen(), 5, "a byte rate")
        shown = screen()
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    row = next(line for line in shown.splitlines() if " lab " in line and "ESTABLISHED" in line)
    assert "alive" in row
    assert "ike-up" in shown and "lab: IKE SA lab[" in shown
    assert "recent events" in shown
