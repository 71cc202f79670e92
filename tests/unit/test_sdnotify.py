"""sd_notify(3) over a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import configparser
import os
import socket
from pathlib import Path

import pytest

from ikepulse.runtime.sdnotify import Notifier

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "ikepulse.service"


@pytest.fixture
def systemd(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_ready_is_one_datagram_of_fields(systemd):
    sock, path = systemd
    Notifier({"NOTIFY_SOCKET": path}).ready("listening on 2 socket(s)")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on 2 socket(s)"


def test_abstract_socket_name():
    name = f"ikepulse-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.send("READY=1")


def test_unreachable_socket_is_reported_not_raised(tmp_path, caplog):
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).send("READY=1")
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "99"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env, interval):
    assert Notifier(env, pid=4242).watchdog_interval == interval


def test_watchdog_pings_from_the_event_loop_until_stopping(systemd):
    sock, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # ping every 20 ms

    async def run():
        notifier.start_watchdog()
        await asyncio.sleep(0.09)
        notifier.stopping()
        await asyncio.sleep(0.05)  # no ping after STOPPING=1

    asyncio.run(run())
    sock.settimeout(0)
    received = []
    while True:
        try:
            received.append(sock.recv(4096))
        except BlockingIOError:
            break
    assert received[-1] == b"STOPPING=1"
    assert 3 <= received.count(b"WATCHDOG=1") <= 6
    assert set(received[:-1]) == {b"WATCHDOG=1"}


def test_unit_file_is_a_notify_service_with_a_watchdog_and_hardening():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
    assert int(service["WatchdogSec"].removesuffix("s")) > 0
    assert "--log-format json" in service["ExecStart"]
    assert set(service["CapabilityBoundingSet"].split()) == {
        "CAP_NET_ADMIN",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
    }
    for key, value in (
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RuntimeDirectory", "ikepulse"),
        ("StateDirectory", "ikepulse"),
        ("ReadWritePaths", "/var/lib/ikepulse"),
    ):
        assert service[key] == value, key
    assert Path(UNIT).read_text().count("[Install]") == 1
