"""systemd's readiness and watchdog protocol (sd_notify(3)): one datagram per message to the
AF_UNIX socket named by ``$NOTIFY_SOCKET``; nothing at all when it is unset."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("ikepulse.systemd")


class Notifier:
    """Sends ``READY=1``, ``STATUS=...``, ``STOPPING=1`` and ``WATCHDOG=1`` to systemd."""

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is an abstract socket (a leading NUL byte on the wire)
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_usec = _watchdog_usec(env, os.getpid() if pid is None else pid)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings: half of ``WatchdogSec``, None when off."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def send(self, *fields: str) -> bool:
        """One notification of ``KEY=value`` fields; False if not delivered (logged once)."""
        if not self.enabled:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as exc:
            log.warning("cannot notify systemd at %r: %s", self.address, exc)
            return False

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def start_watchdog(self) -> None:
        """Ping from the event loop: a loop that stops turning stops the pings."""
        if self.enabled and self.watchdog_interval is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pings(self.watchdog_interval))

    async def _pings(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    def stopping(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.send("STOPPING=1")
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    """``$WATCHDOG_USEC`` when it is meant for this process (``$WATCHDOG_PID``, if set)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        if env.get("WATCHDOG_PID") not in (None, "", str(pid)):
            return None
    except ValueError:
        return None
    return usec if usec > 0 else None
