"""Transport mode (RFC 4303 §3.1.1): ESP protects the IP payload, the IP header stays outside.

Outbound the header is stripped before sealing; inbound a header is rebuilt from the SA's
outer addresses (IPv4 with header checksum, or a plain IPv6 header).
"""

from __future__ import annotations

import ipaddress
import struct


def strip_ip_header(packet: bytes) -> tuple[bytes, int]:
    """The upper-layer payload and its protocol number (IPv6 extension headers not walked)."""
    if packet[0] >> 4 == 4:
        return packet[(packet[0] & 0x0F) * 4 :], packet[9]
    return packet[40:], packet[6]


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_ip_packet(src: str, dst: str, protocol: int, payload: bytes) -> bytes:
    """An IP packet carrying ``payload`` from ``src`` to ``dst``."""
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if source.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            0,
            0x4000,
            64,
            protocol,
            0,
            source.packed,
            destination.packed,
        )
        header = header[:10] + _checksum(header).to_bytes(2, "big") + header[12:]
        return header + payload
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), protocol, 64)
        + source.packed
        + destination.packed
        + payload
    )
