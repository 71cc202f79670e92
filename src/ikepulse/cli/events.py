"""``ikepulse events``: follow the daemon's events, one line each."""

from __future__ import annotations

import json
import time

import click

from .client import ControlError, follow, request


def format_event(record: dict) -> str:
    """``08:52:58 warning  peer-dead        lab: peer of lab[...] is dead ...``."""
    at = record.get("time")
    clock = time.strftime("%H:%M:%S", time.localtime(at)) if at is not None else "--:--:--"
    who = f"{record['connection']}: " if record.get("connection") else ""
    return f"{clock} {record.get('severity', ''):<8} {record['kind']:<17} {who}{record['text']}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--recent", is_flag=True, help="Print the last events the daemon kept, then exit.")
@click.pass_obj
def events(socket_path: str, as_json: bool, recent: bool) -> None:
    """Follow the daemon's events (IKE/CHILD SA up, down, rekeyed, failed and why, peer
    dead and how it was detected, restored, endpoints changed)."""
    show = json.dumps if as_json else format_event
    try:
        if recent:
            response = request(socket_path, {"command": "recent_events"}, timeout=5.0)
            if not response.get("ok"):
                raise click.ClickException(response.get("error", "request failed"))
            for record in response["events"]:
                click.echo(show(record))
            return
        stream = follow(socket_path, {"command": "events"})
        if not next(stream, {}).get("ok"):
            raise click.ClickException("the daemon refused the subscription")
        for record in stream:
            click.echo(show(record))
    except ControlError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
