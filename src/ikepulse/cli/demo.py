"""``ikepulse demo``: two ikepulse peers negotiate a tunnel in memory and show the result."""

from __future__ import annotations

import random

import click

from ..core.events import ChildSaInstalled, IkeSaEstablished
from ..loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle
from ..wire.message import decode_message


@click.command()
@click.option(
    "--ike",
    default="aes256gcm16-prfsha256-x25519",
    show_default=True,
    help="IKE proposal (strongSwan syntax).",
)
@click.option("--esp", default="aes256gcm16", show_default=True, help="ESP proposal.")
def demo(ike: str, esp: str) -> None:
    """Negotiate an IKE SA and a CHILD SA between two in-memory peers."""
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
                    f"ESTABLISHED {event.local[0]}[{event.local[1]}] -> "
                    f"{event.remote[0]}[{event.remote[1]}] {event.proposal}"
                )
            elif isinstance(event, ChildSaInstalled):
                local = ",".join(map(str, event.local_ts))
                remote = ",".join(map(str, event.remote_ts))
                click.echo(
                    f"{name}:   CHILD SA {event.child} INSTALLED "
                    f"{event.mode.value.upper()} SPIs {event.spi_in.hex()}_i "
                    f"{event.spi_out.hex()}_o {event.proposal}  {local} === {remote}"
                )
    if not any(isinstance(e, ChildSaInstalled) for e in left.events):
        raise click.ClickException("the demo tunnel did not come up")
