"""The daemon as systemd runs it (packaging/ikepulse.service): READY=1 once it listens,
WATCHDOG=1 at half of WatchdogSec, STOPPING=1 on SIGTERM, JSON log lines. A datagram
socket stands in for systemd's notify socket.

left 198.51.100.1 (ikepulse --log-format json, NOTIFY_SOCKET, WATCHDOG_USEC=400 ms)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import re
import signal
import socket
import sys
import time

import pytest

from ikepulse.core.sa_manager import SaManager
from ikepulse.testing.lab import IKEPULSE, LEFT_NET, RIGHT_NET, SRC, ikepulse_conf
from ikepulse.testing.loopback import connection

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


_FLOOD = """
import os, socket, sys, time
data, count, target = bytes.fromhex(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range(count):
    sock.sendto(os.urandom(8) + data[8:], (target, 500))  # a new initiator SPI each time
    if i % 50 == 49:
        time.sleep(max(0.0, start + (i + 1) / float(sys.argv[4]) - time.monotonic()))
print(time.monotonic() - start)
"""


def test_ike_sa_init_flood_is_a_few_log_lines_a_second(lab):
    """IKE_SA_INIT requests with a proposal ikepulse refuses (each answered with
    NO_PROPOSAL_CHOSEN and failed at once, so cookies never start) at 3,000/s for 1 s:
    each one would be three lines (received, answered, failed); the log gets 10 a
    second of each kind and one count per kind and second."""
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
    refused = connection(
        "right.example", "left.example", RIGHT_NET, LEFT_NET, ike="aes128-sha256-modp2048"
    )
    peer = SaManager([refused], random.Random(1))
    peer.initiate("site", (lab.right_addr, 500), (lab.left_addr, 500), 0.0)
    (request,) = peer.datagrams_to_send(0.0)
    result = lab.right.run(
        sys.executable, "-c", _FLOOD, request.data.hex(), "3000", lab.left_addr, "3000"
    )
    seconds = float(result.stdout)
    text = ""
    while text != (text := daemon.log.read_text()):  # the backlog, then the last counts
        time.sleep(2.5)  # a count comes at most 2 s after its window's first line
    shown = len(re.findall(r"(received|sending) IKE_SA_INIT", text))
    failed = len(re.findall(r"IKE SA \?\[[0-9a-f]+\] failed", text))
    suppressed = {
        kind: sum(
            int(n) for n in re.findall(rf"suppressed (\d+) similar messages \({kind}\)", text)
        )
        for kind in ("IKE_SA_INIT", "IKE SA failed")
    }
    handled = failed + suppressed["IKE SA failed"]
    marked = shown + suppressed["IKE_SA_INIT"]
    print(f"\nflood: 3000 sent in {seconds:.2f}s, {handled} refused, {marked} IKE_SA_INIT lines")
    print(f"written: {shown} IKE_SA_INIT + {failed} failed lines, counts {suppressed}")
    assert handled > 2000  # the daemon did face a flood
    assert marked == 2 * handled  # received and answered, each
    times = [
        dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        for stamp in re.findall(r"^(\S+ \S+) \w+ ikepulse\.ike: .*IKE_SA_INIT", text, re.M)
    ]
    busy = (times[-1] - times[0]).total_seconds()  # the daemon works through its backlog
    print(f"the daemon answered for {busy:.1f}s: {handled / busy:.0f} refusals/s")
    assert shown <= 10 * (math.ceil(busy) + 1) and failed <= 10 * (math.ceil(busy) + 2)
    assert len(text.splitlines()) < 2 * shown + 4 * (busy + 2) + 20  # nothing else per request
