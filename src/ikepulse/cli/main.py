"""The ``ikepulse`` command."""

from __future__ import annotations

import binascii
import json
import sys

import click

from ..wire.buffer import DecodeError
from ..wire.describe import describe_message
from ..wire.message import decode_message
from .demo import demo


@click.group()
def main() -> None:
    """ikepulse: an IPsec VPN daemon whose tunnels do not die silently."""


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--hex", "as_hex", is_flag=True, help="FILE holds hex text, not raw bytes.")
def decode(file, as_hex: bool) -> None:
    """Print one IKEv2 message (as sent on port 500; FILE or - for stdin) as JSON."""
    data = file.read()
    if as_hex:
        try:
            data = binascii.unhexlify("".join(data.decode("ascii", "replace").split()))
        except (binascii.Error, ValueError) as exc:
            raise click.ClickException(f"not hex text: {exc}") from None
    try:
        msg = decode_message(data)
    except DecodeError as exc:
        click.echo(f"error: malformed IKE message at {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(describe_message(msg), indent=2))


main.add_command(demo)
