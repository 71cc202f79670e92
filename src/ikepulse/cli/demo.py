"""``ikepulse demo``: a real tunnel between ikepulse and strongSwan in lab namespaces."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import click

from .status import format_status


@click.command()
@click.option(
    "--ike",
    default="aes256gcm16-prfsha256-x25519",
    show_default=True,
    help="IKE proposal (strongSwan syntax).",
)
@click.option("--esp", default="aes256gcm16", show_default=True, help="ESP proposal.")
@click.option(
    "--in-memory",
    is_flag=True,
    help="Two ikepulse peers in this process instead of the namespace lab.",
)
def demo(ike: str, esp: str, in_memory: bool) -> None:
    """Bring up a tunnel on the built-in default and show it.

    By default: network namespaces, ikepulse on the left gateway, strongSwan (charon with
    kernel-libipsec) on the right; needs root and strongSwan. Everything is removed afterwards.
    """
    if in_memory:
        _in_memory(ike, esp)
    else:
        _lab(ike, esp)


def _lab(ike: str, esp: str) -> None:
    from ..testing import lab as labmod

    reason = labmod.lab_unavailable()
    if reason is not None:
        raise click.ClickException(f"the lab demo {reason}; try 'ikepulse demo --in-memory'")
    with tempfile.TemporaryDirectory(prefix="ikepulse-demo-") as tmp:
        lab = labmod.Lab(Path(tmp)).up()
        try:
            click.echo("lab: left 198.51.100.1 (ikepulse) <-> right 198.51.100.2 (strongSwan)")
            charon = lab.charon(lab.right)
            charon.start(
                labmod.swanctl_conf(
                    local_addr=lab.right_addr,
                    remote_addr=lab.left_addr,
                    proposals=ike,
                    esp_proposals=esp,
                )
            )
            daemon = lab.ikepulse(lab.left)
            daemon.start(
                labmod.ikepulse_conf(
                    local_addr=lab.left_addr,
                    remote_addr=lab.right_addr,
                    proposals=ike,
                    esp_proposals=esp,
                )
            )
            click.echo(daemon.cli("up", "lab").stdout.strip())
            click.echo("\n$ ping -c 3 203.0.113.66   (left site host -> right site host)")
            click.echo(
                lab.left_site.run(
                    "ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.66", check=False
                ).stdout.strip()
            )
            click.echo("\n$ ikepulse status")
            click.echo(format_status(daemon.status()))
            click.echo("\n$ swanctl --list-sas   (strongSwan's view)")
            click.echo(charon.swanctl("--list-sas").strip())
            click.echo("\n$ ikepulse down lab")
            click.echo(daemon.cli("down", "lab").stdout.strip())
        finally:
            lab.down()
        click.echo("lab removed")


def _in_memory(ike: str, esp: str) -> None:
    from ..core.events import ChildSaInstalled, IkeSaEstablished
    from ..testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle
    from ..wire.message import decode_message

    left, right = make_peers(
        {"ike": ike, "esp": esp},
        {"ike": ike, "esp": esp},
        seed=random.SystemRandom().randrange(1 << 30),
    )
    clock = Clock()
    left.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(left, right, clock)
    sent = sorted(
        [(d, "left -> right") for d in left.sent] + [(d, "right -> left") for d in right.sent],
        key=lambda pair: (
            decode_message(pair[0].data).message_id,
            decode_message(pair[0].data).is_response,
        ),
    )
    for datagram, direction in sent:
        msg = decode_message(datagram.data)
        kind = "response" if msg.is_response else "request"
        click.echo(
            f"{direction}  {msg.exchange.name:<13} {kind:<8} #{msg.message_id} "
            f"{len(datagram.data)} bytes"
        )
    for name, peer in (("left", left), ("right", right)):
        for event in peer.events:
            if isinstance(event, IkeSaEstablished):
                click.echo(
                    f"{name}: IKE SA {event.spi_i.hex()}_i {event.spi_r.hex()}_r "
                    f"ESTABLISHED {event.proposal}"
                )
            elif isinstance(event, ChildSaInstalled):
                click.echo(
                    f"{name}:   CHILD SA {event.child} INSTALLED "
                    f"{event.spi_in.hex()}_i {event.spi_out.hex()}_o {event.proposal}"
                )
    if not any(isinstance(e, ChildSaInstalled) for e in left.events):
        raise click.ClickException("the demo tunnel did not come up")
