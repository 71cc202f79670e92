"""``ikepulse top``: a live terminal view of every configured tunnel and the recent events.

Each frame comes from one ``status`` and one ``recent_events`` request; byte rates are the
difference between two successive polls, per CHILD SA (a new SPI shows a rate from its
second poll on)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from .client import ControlError, request
from .events import format_event
from .status import ago

if TYPE_CHECKING:  # rich is imported when drawn, so that other commands start fast
    from rich.console import Group
    from rich.table import Table

EVENTS_SHOWN = 8
_STYLE = {"alive": "green", "suspect": "yellow", "dead": "bold red", "restarting": "yellow"}


class Rates:
    """Bytes per second in and out per connection, from successive status polls."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int, int]] = {}
        self.rates: dict[str, tuple[float, float]] = {}

    def update(self, ike_sas: list[dict], now: float) -> None:
        seen: dict[str, tuple[float, int, int]] = {}
        totals: dict[str, list[float]] = {}
        for sa in ike_sas:
            for child in sa["children"]:
                spi = child["spi_in"]
                seen[spi] = (now, child.get("bytes_in", 0), child.get("bytes_out", 0))
                before = self._last.get(spi)
                if before is None or now <= before[0]:
                    continue
                span = now - before[0]
                total = totals.setdefault(sa["connection"], [0.0, 0.0])
                total[0] += max(0, seen[spi][1] - before[1]) / span
                total[1] += max(0, seen[spi][2] - before[2]) / span
        self._last = seen
        self.rates = {name: (t[0], t[1]) for name, t in totals.items()}


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B/s", "kB/s", "MB/s"):
        if value < 1000:
            return f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} GB/s"


def _main_sa(ike_sas: list[dict], name: str) -> dict | None:
    """The connection's established IKE SA, else any it has."""
    mine = [sa for sa in ike_sas if sa["connection"] == name]
    for sa in mine:
        if sa["state"] == "ESTABLISHED":
            return sa
    return mine[0] if mine else None


def _next_rekey(sa: dict, now: float) -> str:
    times = [sa.get("rekey_at"), sa.get("reauth_at")]
    times += [child.get("rekey_at") for child in sa["children"]]
    times = [t for t in times if t is not None]
    return f"in {max(0, int(min(times) - now))}s" if times else "-"


def tunnels_table(status: dict, rates: Rates, now: float) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="ikepulse tunnels", expand=True)
    for column, width in (
        ("tunnel", 6), ("state", 11), ("liveness", 8), ("rtt", 6), ("last in", 7),
        ("last out", 7), ("in", 7), ("out", 7), ("next rekey", 8),
    ):  # fmt: skip
        table.add_column(column, min_width=width, no_wrap=column != "liveness")
    ike_sas = status.get("ike_sas", [])
    for connection in status.get("connections", []):
        name = connection["name"]
        sa = _main_sa(ike_sas, name)
        liveness = connection["liveness"]
        cause = ""
        death = connection.get("last_death")
        if sa is not None and sa["state"] == "ESTABLISHED":
            live = sa["liveness"]
            liveness, cause = live["state"], live.get("cause") or ""
        elif death is not None and liveness in ("dead", "restarting"):
            cause = f"{death['direction']}, detected after {death['detected_after']:.1f}s"
        label = Text(liveness, style=_STYLE.get(liveness, ""))
        if cause:
            label.append(f" ({cause})")
        if sa is None:
            table.add_row(name, "down", label, "-", "-", "-", "-", "-", "-")
            continue
        live = sa["liveness"]
        rtt = "-" if live.get("srtt") is None else f"{live['srtt'] * 1000:.1f}ms"
        rate_in, rate_out = rates.rates.get(name, (None, None))
        table.add_row(
            name, sa["state"], label, rtt,
            ago(live.get("last_inbound"), now), ago(live.get("last_outbound"), now),
            _rate(rate_in), _rate(rate_out), _next_rekey(sa, now),
        )  # fmt: skip
    return table


def render(status: dict, recent: list[dict], rates: Rates, now: float) -> Group:
    """One frame: the tunnels, then the last few events, newest last."""
    from rich.console import Group
    from rich.text import Text

    lines = [format_event(record) for record in recent[-EVENTS_SHOWN:]] or ["no events yet"]
    events = [Text(line, no_wrap=True, overflow="ellipsis") for line in lines]
    return Group(tunnels_table(status, rates, now), Text("recent events", style="bold"), *events)


def _poll(socket_path: str, rates: Rates) -> Group:
    from rich.console import Group
    from rich.text import Text

    try:
        status = request(socket_path, {"command": "status"}, timeout=5.0)
        recent = request(socket_path, {"command": "recent_events"}, timeout=5.0)
    except ControlError as exc:
        return Group(Text(f"ikepulse top: {exc}", style="bold red"))
    now = time.time()
    rates.update(status.get("ike_sas", []), now)
    return render(status, recent.get("events", []), rates, now)


@click.command()
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.pass_obj
def top(socket_path: str, interval: float, once: bool) -> None:
    """A live view of each tunnel: state, liveness and its cause, RTT, last packets in and
    out, byte rates, next rekey, and the recent events."""
    from rich.console import Console
    from rich.live import Live

    rates = Rates()
    if once:
        Console().print(_poll(socket_path, rates))
        return
    try:
        with Live(_poll(socket_path, rates), auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(_poll(socket_path, rates), refresh=True)
    except KeyboardInterrupt:
        pass
