"""TUN offloads without I/O: split the TSO super-packets a ``IFF_VNET_HDR`` TUN device reads
into MTU-sized TCP segments, and coalesce decrypted TCP segments into super-packets to write
(what the kernel's GSO and GRO do; ``include/uapi/linux/virtio_net.h`` for the header).

Checksums are the Internet checksum (RFC 1071) computed as ``int.from_bytes(...) % 0xFFFF``:
the ones'-complement sum of 16-bit words is the number modulo 2**16 - 1.
"""

from __future__ import annotations

import struct

VNET = struct.Struct("<BBHHHH")
"""flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (struct virtio_net_hdr)."""
VNET_SIZE = VNET.size
PLAIN = bytes(VNET_SIZE)
"""The header of a packet that needs nothing done (no GSO, checksums complete)."""
NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_ECN = 0, 1, 4, 0x80
TCP = 6
ACK, PSH, FIN, CWR = 0x10, 0x08, 0x01, 0x80
MAX_SUPER = 65535
"""Largest packet written: the IPv4 total length field."""
MAX_SEGMENTS = 64


class OffloadError(ValueError):
    """A super-packet from the device that cannot be split (counted and dropped)."""


def _sum(data) -> int:
    """Ones'-complement sum of ``data`` modulo 0xFFFF (odd lengths padded with a zero)."""
    value = int.from_bytes(data, "big")
    return (value << 8 if len(data) & 1 else value) % 0xFFFF


def _pseudo(packet, ip_len: int, protocol: int, length: int) -> int:
    """Sum of the pseudo header (RFC 9293 §3.1, RFC 8200 §8.1)."""
    addresses = packet[12:20] if packet[0] >> 4 == 4 else packet[8:40]
    return (_sum(addresses) + protocol + length) % 0xFFFF


def _ipv4_checksum(header: bytearray) -> None:
    header[10:12] = b"\0\0"
    header[10:12] = ((-_sum(header)) % 0xFFFF).to_bytes(2, "big")


def complete_checksum(packet: bytes, csum_start: int, csum_offset: int) -> bytes:
    """Fill in a checksum the kernel left partial (``VIRTIO_NET_HDR_F_NEEDS_CSUM``): the
    field holds the pseudo-header sum, the rest is summed from ``csum_start``."""
    at = csum_start + csum_offset
    if at + 2 > len(packet):
        raise OffloadError("checksum offset past the packet")
    value = (-_sum(memoryview(packet)[csum_start:])) % 0xFFFF
    if value == 0 and packet[9 if packet[0] >> 4 == 4 else 6] == 17:
        value = 0xFFFF  # UDP sends an all-ones zero (RFC 768)
    return b"".join((packet[:at], value.to_bytes(2, "big"), packet[at + 2 :]))


def segment(vnet: bytes, packet: bytes) -> list[bytes]:
    """The packets a device read with its virtio header stands for (TCP TSO split at
    ``gso_size``, sequence numbers, IPv4 ids, lengths and checksums redone)."""
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET.unpack(vnet)
    kind = gso_type & ~GSO_ECN
    if kind == GSO_NONE:
        if flags & NEEDS_CSUM:
            return [complete_checksum(packet, csum_start, csum_offset)]
        return [packet]
    if kind not in (GSO_TCPV4, GSO_TCPV6) or not gso_size:
        raise OffloadError(f"GSO type {gso_type} is not handled")
    v4 = kind == GSO_TCPV4
    if len(packet) < 40 or packet[0] >> 4 != (4 if v4 else 6):
        raise OffloadError("GSO packet of the wrong IP version")
    ip_len = (packet[0] & 0x0F) * 4 if v4 else 40
    if (packet[9] if v4 else packet[6]) != TCP or ip_len + 20 > len(packet):
        raise OffloadError("TSO packet that is not plain TCP")
    doff = (packet[ip_len + 12] >> 4) * 4
    head = ip_len + doff
    if doff < 20 or head > len(packet):
        raise OffloadError("TCP header past the packet")
    header = packet[:head]
    seq = int.from_bytes(packet[ip_len + 4 : ip_len + 8], "big")
    ident = int.from_bytes(packet[4:6], "big")
    tcp_flags = packet[ip_len + 13]
    payload = memoryview(packet)[head:]
    out = []
    starts = range(0, len(payload), gso_size)
    last = len(starts) - 1
    for index, offset in enumerate(starts):
        chunk = payload[offset : offset + gso_size]
        seg = bytearray(header)
        seg += chunk
        seg[ip_len + 4 : ip_len + 8] = ((seq + offset) & 0xFFFFFFFF).to_bytes(4, "big")
        flags_now = tcp_flags
        if index != last:
            flags_now &= ~(FIN | PSH)
        if index:
            flags_now &= ~CWR
        seg[ip_len + 13] = flags_now
        if v4:
            seg[2:4] = len(seg).to_bytes(2, "big")
            seg[4:6] = ((ident + index) & 0xFFFF).to_bytes(2, "big")
            ip_header = seg[:ip_len]
            _ipv4_checksum(ip_header)
            seg[10:12] = ip_header[10:12]
        else:
            seg[4:6] = (len(seg) - 40).to_bytes(2, "big")
        seg[ip_len + 16 : ip_len + 18] = b"\0\0"
        tcp_length = len(seg) - ip_len
        total = _pseudo(seg, ip_len, TCP, tcp_length) + _sum(memoryview(seg)[ip_len:])
        seg[ip_len + 16 : ip_len + 18] = ((-total) % 0xFFFF).to_bytes(2, "big")
        out.append(bytes(seg))
    return out


def _tcp_info(packet: bytes):
    """(ip_len, doff, payload length) of an unfragmented TCP segment with a valid checksum
    and data that GRO may merge (ACK, maybe PSH, nothing else), else None."""
    if len(packet) < 40:
        return None
    version = packet[0] >> 4
    if version == 4:
        if packet[0] != 0x45 or packet[9] != TCP or packet[6] & 0xBF or packet[7]:
            return None  # options, not TCP, or a fragment
        if int.from_bytes(packet[2:4], "big") != len(packet):
            return None
        ip_len = 20
    elif version == 6:
        if packet[6] != TCP or int.from_bytes(packet[4:6], "big") != len(packet) - 40:
            return None
        ip_len = 40
    else:
        return None
    if len(packet) < ip_len + 20:
        return None
    doff = (packet[ip_len + 12] >> 4) * 4
    payload = len(packet) - ip_len - doff
    if doff < 20 or payload <= 0 or packet[ip_len + 13] not in (ACK, ACK | PSH):
        return None
    tcp = memoryview(packet)[ip_len:]
    if (_pseudo(packet, ip_len, TCP, len(tcp)) + _sum(tcp)) % 0xFFFF:
        return None  # a bad checksum is left for the receiver to drop
    return ip_len, doff, payload


class _Group:
    __slots__ = (
        "first",
        "ip_len",
        "doff",
        "match",
        "next_seq",
        "size",
        "parts",
        "open",
        "psh",
        "total",
    )

    def __init__(self, packet: bytes, ip_len: int, doff: int, payload: int, match: bytes):
        self.first, self.ip_len, self.doff, self.match = packet, ip_len, doff, match
        self.next_seq = (int.from_bytes(packet[ip_len + 4 : ip_len + 8], "big") + payload) & (
            0xFFFFFFFF
        )
        self.size = payload
        self.parts: list = [packet]
        self.psh = bool(packet[ip_len + 13] & PSH)
        self.open = not self.psh
        self.total = len(packet)

    def take(self, packet: bytes, match: bytes, payload: int, seq: int) -> bool:
        """Append ``packet``'s payload if it continues this group."""
        if (
            not self.open
            or match != self.match
            or seq != self.next_seq
            or payload > self.size
            or self.total + payload > MAX_SUPER
            or len(self.parts) >= MAX_SEGMENTS
        ):
            return False
        head = self.ip_len + self.doff
        self.parts.append(memoryview(packet)[head:])
        self.total += payload
        self.next_seq = (seq + payload) & 0xFFFFFFFF
        if payload < self.size or packet[self.ip_len + 13] & PSH:
            self.open = False
            self.psh = bool(packet[self.ip_len + 13] & PSH)
        return True

    def buffers(self) -> list:
        """The virtio header and the pieces of one packet, for ``os.writev``."""
        if len(self.parts) == 1:
            return [PLAIN, self.first]
        ip_len, head = self.ip_len, self.ip_len + self.doff
        first = self.first
        header = bytearray(first[:head])
        if self.psh:
            header[ip_len + 13] |= PSH
        v4 = ip_len == 20
        if v4:
            header[2:4] = self.total.to_bytes(2, "big")
            ip_header = header[:20]
            _ipv4_checksum(ip_header)
            header[10:12] = ip_header[10:12]
        else:
            header[4:6] = (self.total - 40).to_bytes(2, "big")
        partial = _pseudo(header, ip_len, TCP, self.total - ip_len) or 0xFFFF
        header[ip_len + 16 : ip_len + 18] = partial.to_bytes(2, "big")
        vnet = VNET.pack(NEEDS_CSUM, GSO_TCPV4 if v4 else GSO_TCPV6, head, self.size, ip_len, 16)
        return [vnet, header, memoryview(first)[head:], *self.parts[1:]]


def coalesce(packets: list[bytes]) -> list[list]:
    """Merge consecutive TCP segments of a flow into super-packets (in order per flow);
    each item is the buffers of one write: virtio header first."""
    out: list = []
    groups: dict[bytes, _Group] = {}
    for packet in packets:
        info = _tcp_info(packet)
        if info is None:
            if len(packet) >= 40 and packet[0] >> 4 in (4, 6):
                groups.pop(_flow(packet), None)  # keep this flow's order
            out.append(packet)
            continue
        ip_len, doff, payload = info
        tcp = ip_len
        flow = packet[12:24] if ip_len == 20 else packet[8:44]
        if ip_len == 20:
            match = packet[1:2] + packet[6:7] + packet[8:9]
        else:
            match = packet[0:4] + packet[7:8]
        match += packet[tcp + 8 : tcp + 12] + packet[tcp + 14 : tcp + 16]
        match += packet[tcp + 12 : tcp + 13] + packet[tcp + 20 : tcp + doff]
        group = groups.get(flow)
        seq = int.from_bytes(packet[tcp + 4 : tcp + 8], "big")
        if group is not None and group.take(packet, match, payload, seq):
            continue
        group = _Group(packet, ip_len, doff, payload, match)
        groups[flow] = group
        out.append(group)
    return [item.buffers() if isinstance(item, _Group) else [PLAIN, item] for item in out]


def _flow(packet: bytes) -> bytes:
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 0x0F) * 4
        return packet[12:20] + packet[ihl : ihl + 4]
    return packet[8:44]
