"""TUN offload helpers: TSO splitting and GRO-style coalescing round-trip exactly."""

from __future__ import annotations

import ipaddress

import pytest

from ikepulse.runtime.offload import (
    GSO_TCPV4,
    GSO_TCPV6,
    NEEDS_CSUM,
    PLAIN,
    VNET,
    OffloadError,
    coalesce,
    complete_checksum,
    segment,
)

V4 = ("203.0.113.2", "203.0.113.66")
V6 = ("2001:db8::2", "2001:db8:1::66")
TIMESTAMPS = bytes((1, 1, 8, 10)) + (1234).to_bytes(4, "big") + (99).to_bytes(4, "big")


def checksum(data: bytes) -> int:
    """RFC 1071, word by word (independent of the module's modulo trick)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp(src, dst, seq, payload, flags=0x10, ident=7, options=b"", proto=6):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    header = (
        (40000).to_bytes(2, "big")
        + (5201).to_bytes(2, "big")
        + seq.to_bytes(4, "big")
        + (555).to_bytes(4, "big")
        + bytes((((20 + len(options)) // 4) << 4, flags))
        + (502).to_bytes(2, "big")
        + b"\0\0\0\0"
        + options
    )
    segment_ = header + payload
    pseudo = s.packed + d.packed + bytes((0, proto)) + len(segment_).to_bytes(2, "big")
    if s.version == 6:
        pseudo = s.packed + d.packed + len(segment_).to_bytes(4, "big") + bytes((0, 0, 0, proto))
    value = checksum(pseudo + segment_)
    segment_ = segment_[:16] + value.to_bytes(2, "big") + segment_[18:]
    if s.version == 4:
        ip = bytearray(
            bytes((0x45, 0))
            + (20 + len(segment_)).to_bytes(2, "big")
            + ident.to_bytes(2, "big")
            + b"\x40\0\x40"
            + bytes((proto,))
            + b"\0\0"
            + s.packed
            + d.packed
        )
        ip[10:12] = checksum(bytes(ip)).to_bytes(2, "big")
        return bytes(ip) + segment_
    ip = b"\x60\0\0\0" + len(segment_).to_bytes(2, "big") + bytes((proto, 64))
    return ip + s.packed + d.packed + segment_


def joined(buffers) -> tuple[bytes, bytes]:
    return bytes(buffers[0]), b"".join(bytes(b) for b in buffers[1:])


def train(addresses, sizes, options=b"", last_flags=0x18):
    packets, seq = [], 1000
    for i, size in enumerate(sizes):
        flags = last_flags if i == len(sizes) - 1 else 0x10
        payload = bytes((seq + j) % 251 for j in range(size))
        packets.append(tcp(*addresses, seq, payload, flags, ident=7 + i, options=options))
        seq += size
    return packets


@pytest.mark.parametrize("addresses", [V4, V6])
@pytest.mark.parametrize(
    "sizes", [[1360] * 5 + [77], [1360, 1360], [1359] * 3 + [1], [1000, 1000, 999]]
)
def test_a_train_coalesces_into_one_write_that_splits_back_exactly(addresses, sizes):
    packets = train(addresses, sizes, options=TIMESTAMPS)
    (write,) = coalesce(packets)
    vnet, packet = joined(write)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET.unpack(vnet)
    assert (flags, gso_size, csum_offset) == (NEEDS_CSUM, sizes[0], 16)
    assert gso_type == (GSO_TCPV4 if addresses is V4 else GSO_TCPV6)
    assert len(packet) == hdr_len + sum(sizes)
    assert segment(vnet, packet) == packets


def test_a_gap_a_retransmission_or_another_flow_starts_a_new_write():
    a = train(V4, [1360] * 3, last_flags=0x10)
    gap = tcp(*V4, 1000 + 3 * 1360 + 5, b"x" * 1360, ident=11)
    other = tcp(V4[0], "203.0.113.67", 1000, b"y" * 1360)
    writes = coalesce([a[0], other, a[1], a[2], gap, a[0]])
    assert [len(joined(w)[1]) for w in writes] == [
        40 + 3 * 1360,
        40 + 1360,
        40 + 1360,
        40 + 1360,
    ]
    assert joined(writes[1]) == (PLAIN, other)


def test_pure_acks_fins_options_that_differ_and_bad_checksums_pass_unmerged():
    ack = tcp(*V4, 1000, b"")
    fin = tcp(*V4, 1000, b"z" * 100, flags=0x11)
    first = tcp(*V4, 1000, b"a" * 100, options=TIMESTAMPS)
    other_ts = tcp(*V4, 1100, b"b" * 100, options=TIMESTAMPS[:-1] + b"\x07")
    bad = bytearray(tcp(*V4, 1200, b"c" * 100))
    bad[-1] ^= 1
    for packets in ([first, other_ts], [ack, fin], [first, bytes(bad)]):
        assert [joined(w) for w in coalesce(packets)] == [(PLAIN, p) for p in packets]


def test_a_non_tcp_packet_of_a_flow_keeps_its_place():
    a = train(V4, [500, 500], last_flags=0x10)
    udp = tcp(*V4, 0, b"u" * 30, proto=17)
    fragment = bytearray(a[1])
    fragment[6] = 0x20  # more fragments
    writes = coalesce([a[0], bytes(fragment), udp])
    assert [joined(w)[1] for w in writes] == [a[0], bytes(fragment), udp]


def test_segment_leaves_plain_packets_and_completes_partial_checksums():
    packet = tcp(*V6, 1, b"q" * 33)
    assert segment(PLAIN, packet) == [packet]
    partial = bytearray(packet)
    partial[40 + 16 : 40 + 18] = b"\x12\x34"  # whatever the kernel left there
    pseudo_sum = 0  # recompute what the kernel would put: the pseudo-header sum
    src, dst = packet[8:24], packet[24:40]
    pseudo = src + dst + (len(packet) - 40).to_bytes(4, "big") + b"\0\0\0\x06"
    pseudo_sum = ~checksum(pseudo) & 0xFFFF
    partial[40 + 16 : 40 + 18] = pseudo_sum.to_bytes(2, "big")
    assert complete_checksum(bytes(partial), 40, 16) == packet
    vnet = VNET.pack(NEEDS_CSUM, 0, 0, 0, 40, 16)
    assert segment(vnet, bytes(partial)) == [packet]


def test_unknown_gso_types_and_truncated_super_packets_are_refused():
    packet = tcp(*V4, 1, b"q" * 3000)
    with pytest.raises(OffloadError):
        segment(VNET.pack(NEEDS_CSUM, 5, 40, 1400, 20, 6), packet)
    with pytest.raises(OffloadError):
        segment(VNET.pack(NEEDS_CSUM, GSO_TCPV6, 40, 1400, 20, 16), packet)
    with pytest.raises(OffloadError):
        segment(VNET.pack(NEEDS_CSUM, GSO_TCPV4, 40, 1400, 20, 16), packet[:30])
