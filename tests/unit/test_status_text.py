"""``ikepulse status`` as text: written by the daemon (``"format": "text"`` on the control
socket) and the same, byte for byte, as the CLI formatting the JSON status; the same as the
line-by-line formatter it replaced, over every branch of the layout; and a daemon that
answers only JSON, or answers nonsense, is a clear outcome, never a traceback. And the
selector text the status writes (each address formatted once, whichever form it takes)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ikepulse.cli import main as main_cli
from ikepulse.cli.client import request
from ikepulse.cli.main import main
from ikepulse.cli.status import format_status
from ikepulse.config.loader import DaemonSettings, Settings
from ikepulse.core.status import ike_sa_status
from ikepulse.runtime.daemon import Daemon
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, many_tunnels, run_until_idle
from ikepulse.wire.traffic_selectors import TrafficSelector

NOW = 1_800_000_000.25


def reference(ike_sas: list[dict]) -> str:
    """The formatter as it was before the daemon wrote the text (cli/status.py at 592138f),
    its clock fixed at ``NOW``: the layout the new one must keep."""

    def ago(then):
        return "-" if then is None else f"{max(0, int(NOW - then))}s ago"

    def renewals(sa, **names):
        return "".join(
            f", {label} in {max(0, int(sa[key] - NOW))}s"
            for key, label in names.items()
            if sa.get(key) is not None
        )

    if not ike_sas:
        return "no IKE SAs"
    lines = []
    for sa in ike_sas:
        mark_i, mark_r = ("*", "") if sa["initiator"] else ("", "*")
        lines.append(
            f"{sa['connection'] or '?'}: {sa['state']}, IKEv{sa.get('version', 2)}, "
            f"{sa['spi_i']}_i{mark_i} {sa['spi_r']}_r{mark_r}"
        )
        nat_l = " (behind NAT)" if sa["nat_local"] else ""
        nat_r = " (behind NAT)" if sa["nat_remote"] else ""
        lines.append(
            f"  local  '{sa['local_id'] or ''}' @ {sa['local']['host']}"
            f"[{sa['local']['port']}]{nat_l}"
        )
        lines.append(
            f"  remote '{sa['remote_id'] or ''}' @ {sa['remote']['host']}"
            f"[{sa['remote']['port']}]{nat_r}"
        )
        if sa["proposal"]:
            lines.append(f"  {sa['proposal']}")
        renewal = renewals(sa, rekey_at="rekeying", reauth_at="reauth", expires_at="expires")
        lines.append(f"  established {ago(sa['established'])}{renewal}")
        if sa["state"] == "ESTABLISHED":
            live = sa["liveness"]
            state = live["state"] + (f" ({live['cause']})" if live.get("cause") else "")
            rtt = "" if live["srtt"] is None else f", rtt {live['srtt'] * 1000:.1f}ms"
            lines.append(
                f"  liveness {state}{rtt}, last inbound {ago(live['last_inbound'])}, "
                f"last answer {ago(live['last_answer'])}"
            )
        cert = sa.get("peer_certificate")
        if cert:
            expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cert["not_after"]))
            lines.append(f"  peer certificate '{cert['subject']}', expires {expiry}")
        for child in sa["children"]:
            encap = "-in-UDP" if child["udp_encap"] else ""
            lines.append(
                f"  {child['name']}: {child['state']}, {child['mode']}{encap}, "
                f"ESP:{child['proposal']}"
            )
            renewal = renewals(child, rekey_at="rekeying", expires_at="expires")
            volume = "".join(
                f", {label} after {child[key]:.0f} {unit}"
                for key, label, unit in (
                    ("rekey_bytes", "rekeying", "bytes"),
                    ("rekey_packets", "rekeying", "packets"),
                )
                if child.get(key) is not None
            )
            lines.append(f"    installed {ago(child['installed'])}{renewal}{volume}")
            for direction, key in (("in ", "in"), ("out", "out")):
                traffic = ""
                if f"bytes_{key}" in child:
                    traffic = (
                        f", {child[f'bytes_{key}']:6d} bytes, {child[f'packets_{key}']:5d} packets"
                    )
                if child.get(f"last_{key}bound"):
                    traffic += f", last {ago(child[f'last_{key}bound'])}"
                lines.append(f"    {direction} {child[f'spi_{key}']}{traffic}")
            lines.append(f"    local  {' '.join(child['local_ts'])}")
            lines.append(f"    remote {' '.join(child['remote_ts'])}")
    return "\n".join(lines)


def random_time(rng: random.Random) -> float | None:
    return rng.choice([None, NOW - rng.uniform(0, 5000), NOW + rng.uniform(0, 5000), NOW])


def random_sa(rng: random.Random, i: int) -> dict:
    """An IKE SA dict with every optional part present or not, as core/status.py writes it
    (``version`` missing as a daemon before IKEv1 wrote it)."""
    pick = rng.choice

    def child(j: int) -> dict:
        out = {
            "name": f"net{j}", "state": pick(["INSTALLED", "REKEYING"]),
            "spi_in": f"c{j:07x}", "spi_out": f"d{j:07x}", "mode": pick(["TUNNEL", "TRANSPORT"]),
            "proposal": "AES_GCM_16_256/NO_EXT_SEQ", "udp_encap": pick([True, False]),
            "local_ts": ["10.1.0.0/16"] + ["10.9.0.1/32[udp/53]"] * rng.randint(0, 2),
            "remote_ts": ["10.2.0.0/16", "fd00::/64"][: rng.randint(1, 2)],
            "installed": NOW - rng.uniform(0, 900), "rekey_at": random_time(rng),
            "expires_at": random_time(rng), "rekey_bytes": pick([None, 10**9, 0]),
            "rekey_packets": pick([None, 5000]),
        }  # fmt: skip
        if pick([True, False]):
            out |= {"bytes_in": rng.randint(0, 10**9), "packets_in": rng.randint(0, 10**6)}
            out |= {"bytes_out": rng.randint(0, 10**4), "packets_out": rng.randint(0, 99)}
            out |= {"last_inbound": pick([None, 0, NOW - 3.7]), "last_outbound": random_time(rng)}
        return out

    sa = {
        "connection": pick([f"site{i}", None]), "state": pick(["ESTABLISHED", "CONNECTING"]),
        "initiator": pick([True, False]), "spi_i": f"{i:016x}", "spi_r": f"{i + 7:016x}",
        "local": {"host": "192.0.2.1", "port": pick([500, 4500])},
        "remote": {"host": "2001:db8::2", "port": 4500}, "local_id": pick(["left", None]),
        "remote_id": pick(["C=CH, O=test, CN=ü", None]), "nat_local": pick([True, False]),
        "nat_remote": pick([True, False]), "proposal": pick([None, "AES_CBC_256/HMAC_SHA2_256"]),
        "established": random_time(rng), "rekey_at": random_time(rng),
        "reauth_at": random_time(rng), "expires_at": random_time(rng),
        "liveness": {
            "state": pick(["alive", "suspect", "probing"]), "cause": pick([None, "silent"]),
            "srtt": pick([None, 0.00123, 2.5]), "last_inbound": NOW - rng.uniform(0, 99),
            "last_answer": NOW - rng.uniform(0, 99),
        },
        "peer_certificate": pick([None, {"subject": "CN=right", "not_after": 1.9e9}]),
        "children": [child(j) for j in range(rng.randint(0, 3))],
    }  # fmt: skip
    if pick([True, False]):
        sa["version"] = pick([1, 2])
    return sa


def test_the_text_is_the_one_it_replaced_in_every_branch():
    rng = random.Random(16)
    sas = [random_sa(rng, i) for i in range(300)]
    assert format_status(sas, NOW) == reference(sas)
    assert format_status([], NOW) == reference([]) == "no IKE SAs"


def test_the_text_of_real_sas_is_the_one_it_replaced():
    a, b = many_tunnels(3)
    clock = Clock()
    for i in range(3):
        a.manager.initiate(f"t{i}", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    for side in (a, b):
        sas = [ike_sa_status(sa, NOW - 50.0) for sa in side.manager.sas.values()]
        assert len(sas) == 3 and "ESTABLISHED" in format_status(sas, NOW)
        assert format_status(sas, NOW) == reference(sas)


def daemon_of(manager, tmp: str) -> Daemon:
    """A daemon not started (no sockets but its control socket) serving ``manager``."""
    settings = DaemonSettings(
        control_socket=f"{tmp}/control.sock", ike_port=500, natt_port=4500, listen=(),
        log_level="warning", state_dir=tmp, metrics_listen=None, save_keys=None, offload=False,
    )  # fmt: skip
    daemon = Daemon(Settings(settings, manager.connections, path=f"{tmp}/none.toml"))
    daemon.manager = manager
    return daemon


def test_the_daemon_writes_the_text_the_cli_would_format_from_its_json(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: NOW)  # one clock for both: no second ticks over
    a, b = many_tunnels(3)
    clock = Clock()
    for i in range(3):
        a.manager.initiate(f"t{i}", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)

    async def scenario(daemon: Daemon):
        await daemon.control.start()
        path, loop = daemon.control.path, asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(None, request, path, {"command": "status"})
            printed = await loop.run_in_executor(
                None, CliRunner().invoke, main, ["--socket", path, "status"]
            )
            wrong = {"command": "status", "format": "xml"}
            refused = await loop.run_in_executor(None, request, path, wrong)
        finally:
            await daemon.control.close()
        return answer, printed, refused

    with tempfile.TemporaryDirectory() as tmp:
        answer, printed, refused = asyncio.run(scenario(daemon_of(a.manager, tmp)))
    assert printed.exit_code == 0, printed.output
    assert len(answer["ike_sas"]) == 3
    assert printed.output == format_status(answer["ike_sas"], NOW) + "\n"
    assert printed.output.count("ESTABLISHED") == 3
    assert refused == {"ok": False, "error": "unknown status format 'xml' (json or text)"}


def test_a_daemon_that_answers_only_json_gets_its_answer_formatted(monkeypatch):
    """A daemon from before the text format ignores ``format`` and sends its JSON status."""
    monkeypatch.setattr(time, "time", lambda: NOW)
    sas = [random_sa(random.Random(1), i) for i in range(5)]
    old = {"ok": True, "ike_sas": sas, "connections": [], "counters": {}}
    monkeypatch.setattr(main_cli, "request_body", lambda path, command, timeout=None: (old, b""))
    result = CliRunner().invoke(main, ["--socket", "/tmp/x.sock", "status"])
    assert result.exit_code == 0, result.output
    assert result.output == reference(sas) + "\n"


def test_an_error_or_an_odd_answer_is_a_clear_error(monkeypatch):
    for answer, shown in (
        ({"ok": False, "error": "busy"}, "Error: busy"),
        ({"ok": True}, "unexpected status answer"),
    ):
        monkeypatch.setattr(main_cli, "request_body", lambda p, c, t=None, a=answer: (a, b""))
        result = CliRunner().invoke(main, ["--socket", "/tmp/x.sock", "status"])
        assert result.exit_code == 1 and shown in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_unreadable_answer_over_a_socket_is_a_clear_error():
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "c.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)

        def answer_nonsense() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"<html>not a daemon\n" + json.dumps([1]).encode())

        thread = threading.Thread(target=answer_nonsense)
        thread.start()
        result = CliRunner().invoke(main, ["--socket", path, "status"])
        thread.join(5)
        server.close()
    assert result.exit_code == 1
    assert f"control socket {path}: unreadable answer" in result.output


@pytest.mark.parametrize(
    ("start", "end", "ports", "shown"),
    [
        ("10.0.0.0", "10.0.0.255", (0, 0, 65535), "10.0.0.0/24"),
        ("10.0.0.1", "10.0.0.1", (17, 53, 53), "10.0.0.1/32[17/53]"),
        ("10.0.0.1", "10.0.0.3", (6, 1000, 2000), "10.0.0.1-10.0.0.3[6/1000-2000]"),
        ("10.0.0.4", "10.0.0.1", (0, 0, 65535), "10.0.0.4-10.0.0.1"),
        ("0.0.0.0", "255.255.255.255", (0, 0, 65535), "0.0.0.0/0"),
        ("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", (0, 0, 65535), "2001:db8::/64"),
        ("2001:db8::1", "2001:db8::2", (0, 0, 65535), "2001:db8::1-2001:db8::2"),
    ],
)
def test_a_selector_is_written_as_a_network_only_when_it_is_one(start, end, ports, shown):
    selector = TrafficSelector(ipaddress.ip_address(start), ipaddress.ip_address(end), *ports)
    assert str(selector) == shown
