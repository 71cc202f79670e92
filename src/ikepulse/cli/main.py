"""The ``ikepulse`` command."""

from __future__ import annotations

import binascii
import json
import sys

import click

from .client import ControlError, request, request_body, request_raw
from .demo import demo
from .events import events
from .status import format_status
from .top import top

DEFAULT_SOCKET = "/run/ikepulse/control.sock"


@click.group()
@click.option(
    "--socket",
    "socket_path",
    default=DEFAULT_SOCKET,
    show_default=True,
    envvar="IKEPULSE_SOCKET",
    help="Control socket of the daemon.",
)
@click.pass_context
def main(ctx: click.Context, socket_path: str) -> None:
    """ikepulse: an IPsec VPN daemon whose tunnels do not die silently."""
    ctx.obj = socket_path


def _load(path: str, check_credentials: bool = False):
    import datetime as dt

    from ..config.loader import ConfigError, load_config

    at = dt.datetime.now(dt.UTC) if check_credentials else None
    try:
        return load_config(path, check_at=at)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--config", "config_path", required=True, help="TOML configuration file.")
@click.option("--log-level", default=None, help="debug, info, warning (default: from config).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (time, level, logger, message, fields).",
)
def daemon(config_path: str, log_level: str | None, log_format: str) -> None:
    """Run the daemon in the foreground."""
    import asyncio

    from ..runtime import logs
    from ..runtime.daemon import Daemon

    settings = _load(config_path)
    logs.configure((log_level or settings.daemon.log_level).upper(), log_format)

    async def run() -> None:
        await Daemon(settings).run()

    try:
        asyncio.run(run())
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


@main.command("check-config")
@click.argument("path")
def check_config(path: str) -> None:
    """Validate a configuration file, its certificates and keys (expiry, chains, key match)."""
    settings = _load(path, check_credentials=True)
    names = ", ".join(c.name for c in settings.connections) or "none"
    for connection in settings.connections:
        if connection.aggressive and connection.local_pubkey is None:
            click.echo(
                f"{path}: warning: connections.{connection.name}: Aggressive Mode with a"
                " pre-shared key sends a hash of it in the clear that can be cracked offline"
                " (RFC 2409 §5.4); prefer Main Mode or certificates"
            )
    click.echo(f"{path}: OK ({len(settings.connections)} connection(s): {names})")


_STATUS_OK = b'{"ok": true, "ike_sas": '
"""How the daemon's status answer begins (runtime/daemon.py ``status``, compact JSON)."""


def _call(socket_path: str, command: dict) -> dict:
    try:
        response = request(socket_path, command)
    except ControlError as exc:
        raise click.ClickException(str(exc)) from None
    return _check(response)


def _check(response: dict) -> dict:
    if not response.get("ok"):
        raise click.ClickException(response.get("error", "request failed"))
    return response


@main.command()
@click.argument("connection")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait.")
@click.pass_obj
def up(socket_path: str, connection: str, timeout: float) -> None:
    """Establish CONNECTION and wait for its CHILD SA."""
    command = {"command": "up", "connection": connection, "timeout": timeout}
    click.echo(_call(socket_path, command)["message"])


@main.command()
@click.argument("connection")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait.")
@click.pass_obj
def down(socket_path: str, connection: str, timeout: float) -> None:
    """Delete the IKE SA(s) of CONNECTION (the peer is told)."""
    command = {"command": "down", "connection": connection, "timeout": timeout}
    click.echo(_call(socket_path, command)["message"])


@main.command()
@click.pass_obj
def reload(socket_path: str) -> None:
    """Re-read the daemon's configuration file (like swanctl --load-all): start the new
    connections, replace the changed, close the removed; leave the rest untouched."""
    click.echo(_call(socket_path, {"command": "reload"})["message"])


@main.command()
@click.argument("connection")
@click.option("--child", default=None, help="Only this CHILD SA (default: all of them).")
@click.option("--ike", is_flag=True, help="Rekey the IKE SA instead.")
@click.option(
    "--reauth",
    is_flag=True,
    help="Reauthenticate instead: a new IKE SA and CHILD SAs, then the old ones go.",
)
@click.pass_obj
def rekey(socket_path: str, connection: str, child: str | None, ike: bool, reauth: bool) -> None:
    """Rekey the CHILD SAs (or the IKE SA) of CONNECTION now."""
    if sum((child is not None, ike, reauth)) > 1:
        raise click.UsageError("give at most one of --child, --ike and --reauth")
    command = {
        "command": "rekey",
        "connection": connection,
        "child": child,
        "ike": ike,
        "reauth": reauth,
    }
    click.echo(_call(socket_path, command)["message"])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, one line.")
@click.option("--pretty", is_flag=True, help="Indented JSON, for reading (implies --json).")
@click.pass_obj
def status(socket_path: str, as_json: bool, pretty: bool) -> None:
    """List IKE SAs and their CHILD SAs.

    ``--json`` is compact by default (like ``ip -json``): at 10,000 tunnels an indented
    dump takes Python's pure-Python encoder and costs seconds, a compact one the C encoder."""
    if not (as_json or pretty):
        _status_text(socket_path)
        return
    if not pretty:
        try:
            raw = request_raw(socket_path, {"command": "status"})
        except ControlError as exc:
            raise click.ClickException(str(exc)) from None
        if raw.startswith(_STATUS_OK) and raw.endswith(b"}\n"):
            # The daemon's line less its "ok": the three sections, not decoded and encoded
            # again (at 10,000 SAs that took 0.4 s of the command's second).
            sys.stdout.flush()
            sys.stdout.buffer.write(b"{" + raw[len(b'{"ok": true, ') :])
            sys.stdout.buffer.flush()
            return
        try:
            response = _check(json.loads(raw))
        except ValueError:
            raise click.ClickException(f"control socket {socket_path}: unreadable answer") from None
    else:
        response = _call(socket_path, {"command": "status"})
    fields = ("ike_sas", "connections", "counters")
    shown = {key: response[key] for key in fields}
    click.echo(json.dumps(shown, indent=2) if pretty else json.dumps(shown))


def _status_text(socket_path: str) -> None:
    """The daemon's own text, written out as it came (runtime/control.py); a daemon that
    knows only JSON gets its answer formatted here."""
    try:
        answer, body = request_body(socket_path, {"command": "status", "format": "text"})
    except ControlError as exc:
        raise click.ClickException(str(exc)) from None
    _check(answer)
    if answer.get("format") == "text":
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    elif isinstance(answer.get("ike_sas"), list):
        click.echo(format_status(answer["ike_sas"]))
    else:
        raise click.ClickException(f"control socket {socket_path}: unexpected status answer")


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--hex", "as_hex", is_flag=True, help="FILE holds hex text, not raw bytes.")
def decode(file, as_hex: bool) -> None:
    """Print one IKEv2 or IKEv1 message (as sent on port 500; FILE or - for stdin) as JSON."""
    # Imported here: every other command (``status`` above all) starts without the codecs.
    from ..wire.buffer import DecodeError
    from ..wire.describe import describe_isakmp, describe_message
    from ..wire.isakmp import decode_isakmp, isakmp_version
    from ..wire.message import decode_message

    data = file.read()
    if as_hex:
        try:
            data = binascii.unhexlify("".join(data.decode("ascii", "replace").split()))
        except (binascii.Error, ValueError) as exc:
            raise click.ClickException(f"not hex text: {exc}") from None
    try:
        if isakmp_version(data) == 1:
            described = describe_isakmp(decode_isakmp(data))
        else:
            described = describe_message(decode_message(data))
    except DecodeError as exc:
        click.echo(f"error: malformed IKE message at {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(described, indent=2))


main.add_command(demo)
main.add_command(events)
main.add_command(top)
