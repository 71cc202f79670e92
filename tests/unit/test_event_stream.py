"""The event table (log line, stream record), the bounded subscriber queues, and the
live view's rendering from a status dict."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from ikepulse.cli import events as events_cli
from ikepulse.cli import top as top_cli
from ikepulse.cli.events import format_event
from ikepulse.cli.main import main
from ikepulse.cli.top import Rates, render
from ikepulse.core.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaRekeyed,
    ChildSaTrapped,
    Event,
    IkeSaDeleted,
    IkeSaFailed,
    IkeSaReauthenticated,
    IkeSaRekeyed,
    PeerDead,
    SaEndpointsChanged,
    TunnelRestored,
)
from ikepulse.core.liveness import DpdAction
from ikepulse.runtime.control import ControlServer
from ikepulse.runtime.event_feed import EventFeed
from ikepulse.runtime.event_log import TABLE, describe, failure_cause, log_event
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle
from ikepulse.wire.enums import NotifyType

SPI, SPI2 = bytes.fromhex("1122334455667788"), bytes.fromhex("99aabbccddeeff00")


def real_events() -> list[Event]:
    """What an initiator emits for one tunnel, from two peers in memory."""
    left, right = make_peers()
    clock = Clock()
    left.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(left, right, clock)
    return list(left.events)


def every_event() -> list[Event]:
    made = real_events()
    return made + [
        IkeSaFailed("site", SPI, "no acceptable proposal", NotifyType.NO_PROPOSAL_CHOSEN),
        IkeSaRekeyed("site", SPI, SPI2, SPI2, SPI),
        IkeSaReauthenticated("site", SPI, SPI2),
        IkeSaDeleted("site", SPI, SPI2, by_peer=True),
        ChildSaRekeyed("site", "net", b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"),
        ChildSaFailed("site", "net", "no acceptable selectors", NotifyType.TS_UNACCEPTABLE),
        ChildSaDeleted("site", "net", b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", by_peer=False),
        ChildSaTrapped("site", "net"),
        PeerDead("site", SPI, "no answer to 3 probes", 4.2049, DpdAction.RESTART, "silent"),
        TunnelRestored("site", 7.5, 2),
        SaEndpointsChanged(
            "site", SPI, ("192.0.2.1", 4500), ("198.51.100.2", 4500), True, (b"\x01" * 4,)
        ),
    ]


def test_every_core_event_has_one_row_in_the_table():
    assert set(TABLE) == set(typing.get_args(Event))
    kinds = [spec.kind for spec in TABLE.values()]
    assert len(kinds) == len(set(kinds))


def test_records_are_json_and_carry_the_log_line(caplog):
    events = every_event()
    assert {type(e) for e in events} == set(TABLE)
    caplog.set_level(logging.INFO, logger="ikepulse.daemon")
    for event in events:
        record = describe(event, 1_700_000_000.0)
        assert json.loads(json.dumps(record)) == record
        assert record["connection"] == event.connection
        log_event(event)
        assert caplog.records[-1].getMessage() == record["text"]
        assert record["severity"] == caplog.records[-1].levelname.lower()


def test_established_and_installed_from_a_real_handshake():
    records = [describe(e, 0.0) for e in real_events() if type(e) in TABLE]
    kinds = [r["kind"] for r in records]
    assert kinds[:2] == ["ike-up", "child-up"]
    up, child = records[0], records[1]
    assert up["initiator"] is True and up["remote"].startswith("198.51.100.2[")
    assert child["local_ts"] == ["203.0.113.0/26"] and child["replaces"] is None


def test_peer_dead_record_gives_direction_and_detection_time():
    event = PeerDead(
        "site", SPI, "ESP went out, nothing came back", 4.2049, DpdAction.HOLD, "outbound"
    )
    record = describe(event, 1.0)
    assert record["kind"] == "peer-dead" and record["severity"] == "warning"
    assert record["direction"] == "outbound" and record["cause"] == "peer-dead-outbound"
    assert record["detected_after"] == 4.205 and record["action"] == "hold"
    assert "detected 4.20s after our first unanswered packet" in record["text"]


@pytest.mark.parametrize(
    ("reason", "notify", "cause"),
    [
        ("no acceptable proposal", NotifyType.NO_PROPOSAL_CHOSEN, "proposal-mismatch"),
        ("peer's AUTH does not verify", NotifyType.AUTHENTICATION_FAILED, "auth-failed"),
        ("no response to IKE_SA_INIT after 3 retransmits (7.0s)", None, "retransmit-timeout"),
        ("selectors", NotifyType.TS_UNACCEPTABLE, "ts-mismatch"),
        ("odd", NotifyType.INTERNAL_ADDRESS_FAILURE, "internal-address-failure"),
        ("odd", None, "error"),
    ],
)
def test_failure_causes(reason, notify, cause):
    assert failure_cause(reason, notify) == cause
    record = describe(IkeSaFailed("site", SPI, reason, notify), 0.0)
    assert record["cause"] == cause and record["kind"] == "ike-failed"


def test_human_line():
    record = describe(TunnelRestored("site", 7.5, 2), time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)))
    assert format_event(record) == (
        "03:04:05 info     restored          site: tunnel site restored after 7.50s (2 attempt(s))"
    )


# --- the feed ---------------------------------------------------------------------------------


def test_slow_subscriber_loses_events_in_order_and_counted():
    async def scenario():
        feed = EventFeed(recent=5, queue=4)
        slow = feed.subscribe()
        for n in range(10):
            feed.publish({"kind": "x", "n": n})
        got = [await slow.next() for _ in range(5)]
        feed.publish({"kind": "x", "n": 10})
        got.append(await slow.next())
        return feed, got

    feed, got = asyncio.run(scenario())
    assert [r.get("n") for r in got] == [0, 1, 2, 3, None, 10]
    assert got[4]["kind"] == "events-dropped" and got[4]["count"] == 6
    assert feed.counters["events_dropped"] == 6
    assert [r["n"] for r in feed.recent] == [6, 7, 8, 9, 10]


def test_a_subscriber_that_never_reads_does_not_block_the_daemon():
    """Over a real Unix socket: one follower never reads; publishing stays fast, another
    client is answered, and a follower that hangs up is forgotten."""

    class Stub:
        def __init__(self) -> None:
            self.feed = EventFeed(queue=64)

    async def scenario(path: str):
        stub = Stub()
        server = ControlServer(path, stub)
        await server.start()
        stuck_r, stuck_w = await asyncio.open_unix_connection(path)
        stuck_w.write(b'{"command": "events"}\n')
        assert json.loads(await stuck_r.readline()) == {"ok": True}
        bulky = "x" * 2000
        started = time.monotonic()
        for n in range(5000):  # about 10 MB: far beyond the socket buffers
            stub.feed.publish({"kind": "x", "n": n, "text": bulky})
            if n % 500 == 0:
                await asyncio.sleep(0)  # let the writer run and stall on the full socket
        publishing = time.monotonic() - started
        other_r, other_w = await asyncio.open_unix_connection(path, limit=1 << 22)
        other_w.write(b'{"command": "recent_events"}\n')
        recent = json.loads(await asyncio.wait_for(other_r.readline(), 5))
        other_w.close()
        dropped = stub.feed.counters["events_dropped"]
        stuck_w.close()
        for _ in range(100):
            if stub.feed.subscribers == 0:
                break
            await asyncio.sleep(0.01)
        left = stub.feed.subscribers
        await server.close()
        return publishing, recent, dropped, left

    with tempfile.TemporaryDirectory() as tmp:
        publishing, recent, dropped, left = asyncio.run(scenario(str(Path(tmp) / "c.sock")))
    assert publishing < 2.0
    assert recent["ok"] and len(recent["events"]) == 100 and recent["subscribers"] == 1
    assert recent["events"][-1]["n"] == 4999
    assert dropped > 4000  # most of it: the queue holds 64 and the socket a few hundred KB
    assert left == 0


# --- the live view ----------------------------------------------------------------------------


def status_dict(now: float, bytes_in: int, bytes_out: int) -> dict:
    child = {
        "name": "net", "spi_in": "c1a2b3c4", "spi_out": "d1e2f3a4", "rekey_at": now + 300,
        "bytes_in": bytes_in, "bytes_out": bytes_out,
    }  # fmt: skip
    sa = {
        "connection": "site", "state": "ESTABLISHED", "rekey_at": now + 1200, "reauth_at": None,
        "liveness": {
            "state": "alive", "cause": None, "srtt": 0.0015, "last_inbound": now - 3,
            "last_outbound": now - 1,
        },
        "children": [child],
    }  # fmt: skip
    connections = [
        {"name": "site", "liveness": "alive", "last_death": None},
        {
            "name": "branch", "liveness": "dead",
            "last_death": {"direction": "silent", "detected_after": 4.2, "reason": "x"},
        },
    ]  # fmt: skip
    return {"ike_sas": [sa], "connections": connections}


def test_top_renders_each_tunnel_rates_and_events():
    now = 1_800_000_000.0
    rates = Rates()
    rates.update(status_dict(now, 1000, 0)["ike_sas"], now)
    status = status_dict(now + 2, 5000, 600_000)
    rates.update(status["ike_sas"], now + 2)
    recent = [describe(TunnelRestored("site", 7.5, 2), now)]
    console = Console(record=True, width=160)
    console.print(render(status, recent, rates, now + 2))
    screen = console.export_text()
    site = next(line for line in screen.splitlines() if "site" in line and "ESTABLISHED" in line)
    for shown in ("alive", "1.5ms", "3s ago", "1s ago", "2 kB/s", "300 kB/s", "in 300s"):
        assert shown in site
    branch = next(line for line in screen.splitlines() if "branch" in line)
    assert "down" in branch and "dead (silent, detected after 4.2s)" in branch
    assert "restored          site: tunnel site restored after 7.50s" in screen


def test_a_new_spi_has_no_rate_until_its_second_poll():
    rates = Rates()
    rates.update(status_dict(0.0, 10, 10)["ike_sas"], 0.0)
    assert rates.rates == {}
    rates.update(status_dict(1.0, 10, 10)["ike_sas"], 1.0)
    assert rates.rates == {"site": (0.0, 0.0)}


def test_top_once_and_events_recent_from_the_command_line(monkeypatch):
    now = time.time()
    recent = [describe(TunnelRestored("site", 7.5, 2), now)]

    def answer(path, command, timeout=None):
        assert path == "/tmp/x.sock"
        if command["command"] == "status":
            return {"ok": True, **status_dict(now, 0, 0)}
        return {"ok": True, "events": recent, "subscribers": 0}

    monkeypatch.setattr(top_cli, "request", answer)
    monkeypatch.setattr(events_cli, "request", answer)
    runner = CliRunner()
    frame = runner.invoke(main, ["--socket", "/tmp/x.sock", "top", "--once"], terminal_width=160)
    assert frame.exit_code == 0, frame.output
    assert "ESTABLISHED" in frame.output and "restored after 7.50s" in frame.output
    listed = runner.invoke(main, ["--socket", "/tmp/x.sock", "events", "--recent", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == recent[0]
    missing = runner.invoke(main, ["--socket", "/nonexistent/c.sock", "events"])
    assert missing.exit_code == 1 and "no daemon listening" in missing.output
