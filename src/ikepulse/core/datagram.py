"""What the SA manager hands the runtime and takes from it, besides events: datagrams to
send, and the ESP plane's traffic times (DESIGN.md §3.2)."""

from __future__ import annotations

from dataclasses import dataclass

from .events import Address

EspActivity = tuple[bytes, float | None, float | None, float | None]
"""(inbound SPI, last inbound, last outbound, first outbound since the last inbound), as the
ESP plane's ``activity()`` reports a CHILD SA's traffic."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram to send: an IKE message without the non-ESP marker, or with
    ``keepalive`` a NAT-T keepalive (RFC 3948 §2.3) that goes out exactly as ``data``."""

    data: bytes
    src: Address
    dst: Address
    keepalive: bool = False
