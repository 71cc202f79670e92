"""``ikepulse status`` through the real daemon's control path, for bench/scale_core.py: a
``runtime.Daemon`` (not started: no sockets but its control socket, in a temporary
directory) whose SA manager is the bench's, asked over the Unix socket by the CLI's own
client, the answer laid out as ``status`` and ``status --json`` print it. ``status`` asks the
daemon for its text (``"format": "text"``, runtime/control.py); the figures for formatting
the decoded JSON in the CLI are kept to compare (``cli_text_format_seconds``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ikepulse.cli.client import request, request_body
from ikepulse.cli.status import format_status
from ikepulse.config.loader import DaemonSettings, Settings
from ikepulse.core.sa_manager import SaManager
from ikepulse.runtime.daemon import Daemon
from ikepulse.runtime.gc_steward import paused

SRC = str(Path(__file__).resolve().parent.parent / "src")
JSON_FIELDS = ("ike_sas", "connections", "counters")
"""What ``ikepulse status --json`` prints (cli/main.py)."""


def control_path(manager: SaManager) -> dict:
    """Seconds for each step of ``status`` over ``manager``'s SAs, and the answer's size."""
    with tempfile.TemporaryDirectory(prefix="ikepulse-bench-") as tmp:
        daemon_settings = DaemonSettings(
            control_socket=f"{tmp}/control.sock",
            ike_port=500,
            natt_port=4500,
            listen=(),
            log_level="warning",
            state_dir=tmp,
            metrics_listen=None,
            save_keys=None,
            offload=False,
        )
        settings = Settings(daemon_settings, manager.connections, path=f"{tmp}/none.toml")
        daemon = Daemon(settings)
        daemon.manager = manager
        daemon.gc.observe(len(manager.sas), daemon.now())  # as its loop does after a bring-up
        return asyncio.run(_measure(daemon))


async def _measure(daemon: Daemon) -> dict:
    await daemon.control.start()
    try:
        start = time.perf_counter()
        daemon.status()
        build = time.perf_counter() - start
        loop = asyncio.get_running_loop()
        cli = {}  # first: the answers decoded below, kept, would slow the collector
        for name, args in (
            ("help", ["--help"]),
            ("text", ["status"]),
            ("json", ["status", "--json"]),
            ("json_pretty", ["status", "--json", "--pretty"]),
        ):
            cli[name] = await loop.run_in_executor(None, _cli, daemon.control.path, args)
        start = time.perf_counter()
        with paused():  # as runtime/control.py builds it
            daemon_text = format_status(daemon.ike_sas())
        text_build = time.perf_counter() - start
        start = time.perf_counter()
        command = {"command": "status", "format": "text"}
        answer, body = await loop.run_in_executor(None, request_body, daemon.control.path, command)
        text_round_trip = time.perf_counter() - start
        assert answer == {"ok": True, "format": "text"}, answer
        start = time.perf_counter()
        command = {"command": "status"}
        response = await loop.run_in_executor(None, request, daemon.control.path, command)
        round_trip = time.perf_counter() - start
    finally:
        await daemon.control.close()
    start = time.perf_counter()
    text = format_status(response["ike_sas"])
    as_text = time.perf_counter() - start
    start = time.perf_counter()
    printed = json.dumps({key: response[key] for key in JSON_FIELDS})
    as_json = time.perf_counter() - start
    start = time.perf_counter()
    json.dumps({key: response[key] for key in JSON_FIELDS}, indent=2)
    as_pretty = time.perf_counter() - start
    return {
        "daemon_status_seconds": round(build, 4),
        "control_round_trip_seconds": round(round_trip, 4),
        "daemon_text_seconds": round(text_build, 4),
        "control_text_round_trip_seconds": round(text_round_trip, 4),
        "text_megabytes": round(len(body) / 1e6, 2),
        "daemon_text_lines": daemon_text.count("\n") + 1,
        "cli_text_format_seconds": round(as_text, 4),
        "cli_json_format_seconds": round(as_json, 4),
        "cli_json_pretty_format_seconds": round(as_pretty, 4),
        "cli_status_seconds": round(text_round_trip, 4),
        "cli_status_from_json_seconds": round(round_trip + as_text, 4),
        "cli_status_json_seconds": round(round_trip + as_json, 4),
        "cli_process_seconds": {name: round(t, 3) for name, t in cli.items()},
        "answer_megabytes": round(len(json.dumps(response)) / 1e6, 2),
        "text_lines": text.count("\n") + 1,
        "json_megabytes": round(len(printed) / 1e6, 2),
    }


def _cli(path: str, args: list[str]) -> float:
    """Wall time of ``ikepulse --socket PATH ARGS`` as a process of its own (start-up
    included: ``--help`` alone shows what that is), output discarded."""
    env = {**os.environ, "PYTHONPATH": SRC}
    command = [sys.executable, "-m", "ikepulse.cli", "--socket", path, *args]
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True, timeout=120)
    return time.perf_counter() - start
