"""Control socket: one JSON request line in, one JSON response line out (Unix stream socket).

``{"command": "events"}`` is the exception: after ``{"ok": true}`` the connection stays open
and carries one JSON line per event until the client hangs up. ``{"command": "status",
"format": "text"}`` is answered with ``{"ok": true, "format": "text"}`` and then the text
``ikepulse status`` prints (UTF-8) until the daemon closes the connection: the CLI writes it
out as it comes instead of decoding megabytes of JSON only to format them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .gc_steward import paused
from .status_text import format_status

if TYPE_CHECKING:
    from .daemon import Daemon

log = logging.getLogger("ikepulse.control")
DEFAULT_TIMEOUT = 30.0
BODY = "body"
"""The key of a ``handle`` answer whose bytes follow its JSON line instead of being in it."""
STATUS_FORMATS = ("json", "text")


class ControlServer:
    def __init__(self, path: str, daemon: Daemon) -> None:
        self.path = path
        self.daemon = daemon
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        self.server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        Path(self.path).unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if _is_subscription(line):
                await self._stream(reader, writer)
                return
            response = await self.handle(line)
            body = response.pop(BODY, None)
            writer.write(json.dumps(response).encode() + b"\n")
            if body is not None:
                writer.write(body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'malformed request: expected {"command": ...}'}
        timeout = float(request.get("timeout", DEFAULT_TIMEOUT))
        daemon = self.daemon
        try:
            if command == "status":
                return _status(daemon, request.get("format", "json"))
            if command == "recent_events":
                feed = daemon.feed
                return {"ok": True, "events": list(feed.recent), "subscribers": feed.subscribers}
            if command == "reload":
                return daemon.reload()
            if command == "up":
                return await daemon.up(request["connection"], timeout)
            if command == "down":
                return await daemon.down(request["connection"], timeout)
            if command == "rekey":
                return daemon.rekey(
                    request["connection"],
                    request.get("child"),
                    bool(request.get("ike")),
                    bool(request.get("reauth")),
                )
        except KeyError as exc:
            return {"ok": False, "error": str(exc).strip("'\"")}
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown command {command!r}"}

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Follow the event feed. A slow reader stalls only this coroutine; the feed drops
        what it cannot queue for it. Any input or EOF from the client ends the stream."""
        feed = self.daemon.feed
        subscriber = feed.subscribe()
        hangup = asyncio.ensure_future(reader.read(1))
        try:
            writer.write(b'{"ok": true}\n')
            await writer.drain()
            while True:
                record = asyncio.ensure_future(subscriber.next())
                await asyncio.wait({record, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if not record.done():
                    record.cancel()
                    return
                if record.result() is None:
                    return
                writer.write(json.dumps(record.result()).encode() + b"\n")
                await writer.drain()
        finally:
            feed.unsubscribe(subscriber)
            hangup.cancel()


def _status(daemon: Daemon, form: object) -> dict:
    if form == "text":
        with paused():  # about a hundred dicts and lists per SA, none of them garbage
            text = format_status(daemon.ike_sas())
        return {"ok": True, "format": "text", BODY: text.encode("utf-8", "replace") + b"\n"}
    if form != "json":
        return {"ok": False, "error": f"unknown status format {form!r} (json or text)"}
    return daemon.status()


def _is_subscription(line: bytes) -> bool:
    try:
        request = json.loads(line)
    except ValueError:
        return False
    return isinstance(request, dict) and request.get("command") == "events"
