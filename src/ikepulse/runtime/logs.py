"""Log output: text or one JSON object per line (for journald and log shippers), and a
per-kind rate limit on lines about unauthenticated input, so that a flood of IKE_SA_INIT
requests costs a few lines a second plus a count of what was suppressed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

RATE_LIMIT = "rate_limit"
"""``extra={RATE_LIMIT: kind}`` marks a log line as one of a kind that a flood of
unauthenticated input can repeat without bound."""

LINES_PER_SECOND = 10
"""Lines of one kind let through per second; the rest are counted."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}``: the fields a line was logged with
    (``extra=``) follow the four fixed ones."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


@dataclass
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0
    level: int = logging.DEBUG


class RateLimit(logging.Filter):
    """At most ``per_second`` lines of each marked kind (per logger) in any one-second
    window; then one "suppressed K similar messages" line for the rest. Unmarked lines
    always pass."""

    def __init__(
        self, per_second: int = LINES_PER_SECOND, clock: Callable[[], float] = time.monotonic
    ):
        super().__init__()
        self.per_second = per_second
        self.clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = getattr(record, RATE_LIMIT, None)
        now = self.clock()
        self.flush(now)
        if kind is None:
            return True
        window = self._windows.setdefault((record.name, kind), _Window(now))
        if window.passed < self.per_second:
            window.passed += 1
            return True
        window.suppressed += 1
        window.level = max(window.level, record.levelno)
        return False

    def flush(self, now: float | None = None) -> None:
        """Close the windows that are over, logging how many lines each suppressed."""
        now = self.clock() if now is None else now
        ended = [(key, w) for key, w in self._windows.items() if now - w.start >= 1.0]
        for key, _ in ended:
            del self._windows[key]
        for (name, kind), window in ended:
            if window.suppressed:
                logging.getLogger(name).log(
                    window.level,
                    "suppressed %d similar messages (%s) in %.1fs",
                    window.suppressed, kind, now - window.start,
                    extra={"suppressed": window.suppressed, "kind": kind},
                )  # fmt: skip


_installed: list[RateLimit] = []


def configure(level: str, fmt: str = "text", stream=None) -> None:
    """Log to ``stream`` (stderr) as ``text`` or ``json``, rate-limited per kind."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    limit = RateLimit()
    handler.addFilter(limit)
    _installed.append(limit)
    logging.basicConfig(level=level, handlers=[handler], force=True)


async def flush_periodically(interval: float = 1.0) -> None:
    """Report suppressed lines even when the flood stops and nothing else is logged."""
    while True:
        await asyncio.sleep(interval)
        for limit in _installed:
            limit.flush()
