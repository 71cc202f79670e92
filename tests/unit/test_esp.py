"""ESP seal/open, padding, replay window and ESN (RFC 4303, RFC 4106, RFC 7634, RFC 4868)."""

from __future__ import annotations

import random

import pytest

from ikepulse.esp.replay import ReplayWindow
from ikepulse.esp.sa import EspDrop, EspSa, SaExpired
from ikepulse.wire.enums import EncrId, IntegId

SUITES = {
    "aes256gcm16": ((EncrId.AES_GCM_16, 256), None, 36, 0),
    "aes128gcm16": ((EncrId.AES_GCM_16, 128), None, 20, 0),
    "chacha20poly1305": ((EncrId.CHACHA20_POLY1305, None), None, 36, 0),
    "aes128-sha256": ((EncrId.AES_CBC, 128), IntegId.HMAC_SHA2_256_128, 16, 32),
    "aes256-sha1": ((EncrId.AES_CBC, 256), IntegId.HMAC_SHA1_96, 32, 20),
    "aes256-sha512": ((EncrId.AES_CBC, 256), IntegId.HMAC_SHA2_512_256, 32, 64),
}


def pair(name: str, esn: bool = False, window: int = 1024):
    encr, integ, encr_size, integ_size = SUITES[name]
    rng = random.Random(name)
    keys = rng.randbytes(encr_size), rng.randbytes(integ_size)
    spi = b"\xc0\x01\x02\x03"
    out = EspSa(spi, encr, integ, *keys, esn=esn, rng=rng)
    inbound = EspSa(spi, encr, integ, *keys, esn=esn, rng=rng, replay_window=window)
    return out, inbound


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("name", SUITES)
def test_round_trip_every_length(name, esn):
    out, inbound = pair(name, esn)
    for size in range(0, 70):
        payload = bytes(range(size % 256)) * 1 + bytes(size - size % 256)
        packet = out.seal(payload, 4)
        assert packet[:4] == out.spi
        body = len(packet) - 8 - out.iv_size - out.icv_size
        assert body % out.block == 0
        assert inbound.open(packet) == (payload, 4)


@pytest.mark.parametrize("name", SUITES)
def test_tampered_packet_is_dropped_and_window_not_advanced(name):
    out, inbound = pair(name)
    packet = bytearray(out.seal(b"x" * 40, 4))
    for at in (9, len(packet) // 2, len(packet) - 1):
        bad = bytearray(packet)
        bad[at] ^= 1
        with pytest.raises(EspDrop) as info:
            inbound.open(bytes(bad))
        assert info.value.counter == "auth_failed"
    assert inbound.open(bytes(packet)) == (b"x" * 40, 4)


def test_replay_is_dropped_and_reordering_accepted():
    out, inbound = pair("aes256gcm16")
    packets = [out.seal(i.to_bytes(2, "big"), 4) for i in range(2000)]
    first = list(range(900))
    random.Random(3).shuffle(first)  # reordered within the 1024-packet window
    for i in first + list(range(900, 2000)):
        assert inbound.open(packets[i]) == (i.to_bytes(2, "big"), 4)
    with pytest.raises(EspDrop) as info:
        inbound.open(packets[1999])
    assert info.value.counter == "replay"
    with pytest.raises(EspDrop):  # far behind the window
        inbound.open(packets[5])


def test_window_of_1024_accepts_late_packet_1023_behind():
    out, inbound = pair("aes128gcm16")
    packets = [out.seal(b"p", 4) for _ in range(1025)]
    inbound.open(packets[1023])  # seq 1024
    inbound.open(packets[0])  # seq 1, 1023 behind: still inside
    inbound2 = pair("aes128gcm16")[1]
    inbound2.open(packets[1024])  # seq 1025
    with pytest.raises(EspDrop):
        inbound2.open(packets[0])  # seq 1, 1024 behind: outside


def test_esn_crosses_the_32_bit_boundary():
    out, inbound = pair("aes256gcm16", esn=True)
    out.seq = inbound.replay.top = (1 << 32) - 3
    for _ in range(6):
        packet = out.seal(b"data", 4)
        assert inbound.open(packet) == (b"data", 4)
    assert inbound.replay.top == (1 << 32) + 3


def test_sequence_number_exhaustion_expires_the_sa():
    out, _ = pair("aes256gcm16")
    out.seq = (1 << 32) - 2
    out.seal(b"last", 4)
    with pytest.raises(SaExpired):
        out.seal(b"one too many", 4)


def test_replay_window_esn_inference_cases():
    w = 64
    assert ReplayWindow.infer_esn(40, (1 << 32) + 100, w) == (1 << 32) + 40
    assert ReplayWindow.infer_esn(100, (1 << 32) + 100, w) == (1 << 32) + 100
    # window spans the boundary: top low = 10, a packet with low 0xFFFFFFF0 is from before
    assert ReplayWindow.infer_esn(0xFFFFFFF0, (1 << 32) + 10, w) == 0xFFFFFFF0
    # window within one subspace: a low number far below means the next subspace
    assert ReplayWindow.infer_esn(3, (1 << 32) + 1000, w) == (2 << 32) + 3


def test_transport_mode_round_trip_rebuilds_the_ip_header():
    from ikepulse.esp.transport_mode import build_ip_packet, strip_ip_header

    original = build_ip_packet("198.51.100.1", "198.51.100.2", 17, b"\x13\x88\x13\x88udp!")
    out, inbound = pair("aes256gcm16")
    payload, protocol = strip_ip_header(original)
    esp = out.seal(payload, protocol)
    got, next_header = inbound.open(esp)
    assert build_ip_packet("198.51.100.1", "198.51.100.2", next_header, got) == original
    # the IPv4 header checksum verifies: the one's-complement sum of the header is 0xFFFF
    words = [int.from_bytes(original[i : i + 2], "big") for i in range(0, 20, 2)]
    total = sum(words)
    assert (total & 0xFFFF) + (total >> 16) == 0xFFFF
    v6 = build_ip_packet("2001:db8::1", "2001:db8::2", 58, b"icmp")
    assert strip_ip_header(v6) == (b"icmp", 58) and len(v6) == 44


def test_lifetime_marks_report_each_threshold_once():
    from ikepulse.esp.spd import Policy

    policy = Policy("lan", (), (), None, None, ("198.51.100.1", 4500), ("198.51.100.2", 4500), True)
    policy.set_marks([(None, 100), (5000, 110)])
    assert (policy.bytes_mark, policy.packets_mark) == (5000, 100)
    policy.counters["packets_in"] = 100  # the rekey mark, reached inbound
    policy.passed_mark()
    assert (policy.bytes_mark, policy.packets_mark) == (5000, 110)
    policy.counters["bytes_out"] = 6000  # the life mark, reached outbound by bytes
    policy.passed_mark()
    assert (policy.bytes_mark, policy.packets_mark) == (float("inf"), float("inf"))
    # life_bytes alone, with no rekey mark in front of it
    policy.set_marks([(None, None), (7000, None)])
    assert (policy.bytes_mark, policy.packets_mark) == (7000, float("inf"))
