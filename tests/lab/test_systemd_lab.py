"""The daemon as systemd runs it (packaging/ikepulse.service): READY=1 once it listens,
WATCHDOG=1 at half of WatchdogSec, STOPPING=1 on SIGTERM, JSON log lines. A datagram
socket stands in for systemd's notify socket.

left 198.51.100.1 (ikepulse --log-format json, NOTIFY_SOCKET, WATCHDOG_USEC=400 ms)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from ikepulse.testing.lab import IKEPULSE, SRC, ikepulse_conf

pytestmark = pytest.mark.lab


def test_notify_watchdog_and_json_logs(lab, tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    control = tmp_path / "control.sock"
    config = tmp_path / "ikepulse.toml"
    config.write_text(
        f'[daemon]\ncontrol_socket = "{control}"\nstate_dir = "{tmp_path}"\n'
        + ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(SRC),
        NOTIFY_SOCKET=str(tmp_path / "notify"),
        WATCHDOG_USEC="400000",
    )
    log = tmp_path / "daemon.log"
    started = time.monotonic()
    proc = lab.left.popen(
        [*IKEPULSE, "daemon", "--config", str(config), "--log-format", "json"], log, env
    )
    env.pop("WATCHDOG_USEC")
    try:
        first = notify.recv(4096).decode()
        assert first.startswith("READY=1\nSTATUS=listening on")
        assert control.exists()  # ready means the control socket answers too
        pings = []
        while len(pings) < 4:
            pings.append((notify.recv(4096), time.monotonic()))
        assert {data for data, _ in pings} == {b"WATCHDOG=1"}
        gaps = [b - a for (_, a), (_, b) in zip(pings, pings[1:], strict=False)]
        assert all(0.1 < gap < 0.4 for gap in gaps), gaps  # every 200 ms, within the 400
        proc.send_signal(signal.SIGTERM)
        while (data := notify.recv(4096)) == b"WATCHDOG=1":
            pass
        assert data == b"STOPPING=1"
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        notify.close()
    assert time.monotonic() - started < 30
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x["message"].startswith("listening on 198.51.100.1[500]") for x in lines)
