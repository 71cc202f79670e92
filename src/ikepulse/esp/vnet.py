"""Whole TUN super-packets in one ESP packet, between two ikepulse peers (opt-in).

A TUN device opened with ``IFF_VNET_HDR`` and TSO hands the daemon TCP super-packets of up
to 64 KB, each after a 10-byte ``struct virtio_net_hdr`` (``include/uapi/linux/
virtio_net.h``) whose checksum is only partial. Splitting them into MTU-sized segments and
finishing checksums in Python costs more than the crypto. So when both peers of a CHILD SA
said so (the private status notify ``IKEPULSE_ESP_VNET`` in IKE_AUTH or CREATE_CHILD_SA),
the sender seals header + packet as ONE ESP packet with Next Header 253 (an experimental
value, RFC 3692 / RFC 4727), the kernel fragments the big outer datagram and the peer's
kernel reassembles it; the receiver writes header + packet to its TUN as is, and its kernel
completes the checksum and segments. No per-segment work in Python on either side.

Honest limits: fragmenting ESP after encryption is allowed (RFC 4301 §8.1, RFC 7296 §2.23
for the UDP-encapsulated case), but a path that drops IP fragments drops every super-packet
too. That is why this is opt-in (``[daemon] offload = true`` on both ends), negotiated per
CHILD SA, and never used with a peer that is not ikepulse: a peer that did not answer the
notify never sees Next Header 253, and an inbound 253 on an SA that did not negotiate it is
a counted drop. Transport mode and IKEv1 do not use it.
"""

from __future__ import annotations

import struct

NEXT_VNET = 253
"""ESP Next Header of a virtio-framed packet (RFC 3692 experimental value)."""
VNET = struct.Struct("<BBHHHH")
"""flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (struct virtio_net_hdr)."""
VNET_SIZE = VNET.size
MAX_PACKET = 65535 - 128
"""Largest inner IP packet sent this way: the outer IPv4 datagram (65535) less outer IP,
UDP, ESP header, IV, the virtio header, worst-case padding, trailer and ICV."""
_FLAGS = 0x03  # VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID
_GSO_NONE, _GSO_TCPV4, _GSO_TCPV6, _GSO_ECN = 0, 1, 4, 0x80
HEAD_BYTES = 64
"""Bytes of the inner packet the selector check reads (IPv4 with options and ports)."""


class VnetError(ValueError):
    """A decrypted virtio-framed packet that the TUN device must not get (counted, dropped)."""


def is_vnet(inner: bytes) -> bool:
    """Whether ``EspPlane.inbound`` returned a virtio-framed packet: its first byte is the
    header's flags (below 16), an IP packet's is its version (4 or 6) in the high nibble."""
    return inner[0] < 0x10


def frame(vnet: bytes, packet: bytes) -> bytes:
    """The ESP payload for ``packet`` read from the TUN device after header ``vnet``;
    VnetError for what the peer would refuse (``check``): split that instead."""
    if len(vnet) != VNET_SIZE:
        raise VnetError(f"virtio header of {len(vnet)} bytes")
    payload = vnet + packet
    check(payload)
    return payload


def check(payload: bytes) -> int:
    """Validate a decrypted Next Header 253 payload; returns the inner packet's length.

    The peer is authenticated, but the kernel trusts this header (checksum offsets, GSO
    type): anything it could misread is refused here rather than written."""
    if len(payload) < VNET_SIZE + 20:
        raise VnetError("virtio-framed packet too short")
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET.unpack_from(payload)
    size = len(payload) - VNET_SIZE
    version = payload[VNET_SIZE] >> 4
    if flags & ~_FLAGS or version not in (4, 6) or size > MAX_PACKET:
        raise VnetError("virtio-framed packet with bad flags, IP version or size")
    kind = gso_type & ~_GSO_ECN
    if kind != _GSO_NONE and (kind != (_GSO_TCPV4 if version == 4 else _GSO_TCPV6) or not gso_size):
        raise VnetError(f"GSO type {gso_type} for an IPv{version} packet")
    if flags & 1 and csum_start + csum_offset + 2 > size:
        raise VnetError("checksum offset past the packet")
    return size


def head(payload: bytes) -> bytes:
    """The start of the inner IP packet, enough for the selector check (``spd.parse_flow``)."""
    return payload[VNET_SIZE : VNET_SIZE + HEAD_BYTES]
