"""Whole TUN super-packets in ESP with Next Header 253 (esp/vnet.py): both planes of a CHILD
SA that negotiated it pass header + packet through; everything else is a counted drop."""

from __future__ import annotations

import random

import pytest
from test_esp_plane import LEFT_GW, LEFT_TS, OLD, RIGHT_TS, keys, pair

from ikepulse.esp.plane import EspPlane
from ikepulse.esp.sa import EspSa
from ikepulse.esp.transport_mode import build_ip_packet
from ikepulse.esp.vnet import MAX_PACKET, NEXT_VNET, VNET, VnetError, check, head, is_vnet
from ikepulse.wire.enums import EncrId
from ikepulse.wire.traffic_selectors import TrafficSelector

LEFT6 = (*LEFT_TS, TrafficSelector.from_network("2001:db8:1::/64"))
RIGHT6 = (*RIGHT_TS, TrafficSelector.from_network("2001:db8:2::/64"))


def tcp(src: str, dst: str, size: int) -> bytes:
    """A TCP segment with ``size`` bytes of data (checksum field left partial, as TSO)."""
    header = (40000).to_bytes(2) + (5201).to_bytes(2) + bytes(8) + b"\x50\x18" + bytes(6)
    return build_ip_packet(src, dst, 6, header + bytes(range(256)) * (size // 256))


SUPER = tcp("203.0.113.2", "203.0.113.66", 60_000)
SUPER6 = tcp("2001:db8:1::2", "2001:db8:2::2", 30_000)
TSO4 = VNET.pack(1, 1, 40, 1360, 20, 16)  # NEEDS_CSUM, GSO_TCPV4, gso_size 1360
TSO6 = VNET.pack(1, 4, 60, 1340, 40, 16)


def planes(left_vnet: bool, right_vnet: bool) -> tuple[EspPlane, EspPlane]:
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    left.install(pair(OLD, "left", vnet=left_vnet, local_ts=LEFT6, remote_ts=RIGHT6), 0.0)
    right.install(pair(OLD, "right", vnet=right_vnet, local_ts=RIGHT6, remote_ts=LEFT6), 0.0)
    return left, right


def sealer() -> EspSa:
    """left's outbound SA, outside the plane: seals whatever a test wants."""
    return EspSa(OLD[1], (EncrId.AES_GCM_16, 256), None, keys(OLD).encr_i)


def opener() -> EspSa:
    return EspSa(OLD[1], (EncrId.AES_GCM_16, 256), None, keys(OLD).encr_i)


def test_a_super_packet_travels_whole_and_counts_its_inner_bytes():
    left, right = planes(True, True)
    assert left.carries_vnet(SUPER)
    policy, esp = left.outbound(SUPER, 1.0, TSO4)
    assert len(esp) > 59_000 and SUPER[40:1000] not in esp
    assert opener().open(esp) == (TSO4 + SUPER, NEXT_VNET)
    inner = right.inbound(esp, LEFT_GW, 2.0)
    assert inner == TSO4 + SUPER and is_vnet(inner)
    assert left.status(OLD[0], 0.0)["bytes_out"] == len(SUPER)
    status = right.status(OLD[1], 0.0)
    assert (status["packets_in"], status["bytes_in"]) == (1, len(SUPER))
    assert right.inbound(esp, LEFT_GW, 3.0) is None  # the replay window still applies
    assert right.status(OLD[1], 0.0)["replay_drops"] == 1


def test_ipv6_super_packets_and_plain_packets_on_the_same_sa():
    left, right = planes(True, True)
    six = right.inbound(left.outbound(SUPER6, 1.0, TSO6)[1], LEFT_GW, 1.0)
    assert six == TSO6 + SUPER6
    small = tcp("203.0.113.2", "203.0.113.66", 512)
    plain = right.inbound(left.outbound(small, 1.0)[1], LEFT_GW, 1.0)
    assert plain == small and not is_vnet(plain)


@pytest.mark.parametrize("left_vnet, right_vnet", [(False, True), (False, False)])
def test_an_sa_without_the_flag_never_sends_next_header_253(left_vnet, right_vnet):
    left, right = planes(left_vnet, right_vnet)
    assert not left.carries_vnet(SUPER)
    _, esp = left.outbound(SUPER, 1.0, TSO4)  # the header is not sent along
    assert opener().open(esp) == (SUPER, 4)
    assert right.inbound(esp, LEFT_GW, 1.0) == SUPER


def test_next_header_253_on_an_sa_that_did_not_negotiate_it_is_a_counted_drop():
    left, right = planes(True, False)
    _, esp = left.outbound(SUPER, 1.0, TSO4)
    assert right.inbound(esp, LEFT_GW, 1.0) is None
    status = right.status(OLD[1], 0.0)
    assert status["vnet_drops"] == 1 and status["packets_in"] == 0


BAD = {
    "udp gso": VNET.pack(1, 3, 28, 1372, 20, 6) + SUPER,
    "unknown flag": VNET.pack(0x81, 1, 40, 1360, 20, 16) + SUPER,
    "checksum past the end": VNET.pack(1, 1, 40, 1360, len(SUPER), 16) + SUPER,
    "tcpv6 gso on ipv4": VNET.pack(1, 4, 40, 1360, 20, 16) + SUPER,
    "gso without a size": VNET.pack(1, 1, 40, 0, 20, 16) + SUPER,
    "not ip": TSO4 + b"\x00" * 100,
    "too short": TSO4 + SUPER[:19],
}


@pytest.mark.parametrize("payload", BAD.values(), ids=BAD.keys())
def test_malformed_virtio_headers_never_reach_the_device(payload):
    left, right = planes(True, True)
    assert right.inbound(sealer().seal(payload, NEXT_VNET), LEFT_GW, 1.0) is None
    assert right.status(OLD[1], 0.0)["malformed_drops"] == 1
    with pytest.raises(VnetError):
        check(payload)
    if left.carries_vnet(payload[10:]):  # nor are they sent: the caller splits them
        with pytest.raises(VnetError):
            left.outbound(payload[10:], 1.0, payload[:10])
        assert left.status(OLD[0], 0.0)["packets_out"] == 0


def test_inner_packets_outside_the_selectors_are_dropped():
    _, right = planes(True, True)
    stray = tcp("203.0.113.2", "198.51.100.9", 4000)
    assert right.inbound(sealer().seal(TSO4 + stray, NEXT_VNET), LEFT_GW, 1.0) is None
    assert right.status(OLD[1], 0.0)["selector_drops"] == 1


def test_transport_mode_never_carries_super_packets():
    plane = EspPlane(random.Random(1))
    plane.install(pair(OLD, "left", vnet=True, transport=True), 0.0)
    assert not plane.carries_vnet(tcp("198.51.100.1", "198.51.100.2", 4000))


def test_check_and_head():
    assert check(TSO4 + SUPER) == len(SUPER)
    assert head(TSO4 + SUPER) == SUPER[:64]
    assert not is_vnet(SUPER) and not is_vnet(SUPER6) and is_vnet(bytes(10) + SUPER)
    with pytest.raises(VnetError):
        check(TSO4 + SUPER[:40] + bytes(MAX_PACKET))
