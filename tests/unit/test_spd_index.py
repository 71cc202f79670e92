"""The SPD's outbound lookup by destination prefix (esp/spd_index.py) gives the answer of a
linear walk in activation order, newest first: IPv4 and IPv6, ranges that are not one
prefix, protocols and ports, retired and re-activated SAs."""

from __future__ import annotations

import ipaddress
import random

from ikepulse.esp.sa import EspSa
from ikepulse.esp.spd import Policy, Spd, parse_flow
from ikepulse.esp.transport_mode import build_ip_packet
from ikepulse.wire.enums import EncrId
from ikepulse.wire.traffic_selectors import TrafficSelector

AES = (EncrId.AES_GCM_16, 256)
GW = ("198.51.100.1", 4500)


def ts(cidr: str, protocol: int = 0, ports: tuple[int, int] = (0, 65535)) -> TrafficSelector:
    net = ipaddress.ip_network(cidr)
    return TrafficSelector(net.network_address, net.broadcast_address, protocol, *ports)


def span(start: str, end: str) -> TrafficSelector:
    return TrafficSelector(ipaddress.ip_address(start), ipaddress.ip_address(end))


def policy(n: int, remote, local=None) -> Policy:
    spi = n.to_bytes(4, "big")
    local = local or (ts("0.0.0.0/0"), ts("::/0"))
    sa = EspSa(spi, AES, None, bytes(36))
    return Policy(f"p{n}", tuple(local), tuple(remote), sa, sa, GW, GW, True)


def udp(src: str, dst: str, dport: int = 5001) -> bytes:
    return build_ip_packet(src, dst, 17, b"\x13\x88" + dport.to_bytes(2) + b"\x00\x08\x00\x00")


def linear(active: list[Policy], packet: bytes) -> Policy | None:
    """The SPD's rule before the index: the first match, newest activation first."""
    flow = parse_flow(packet)
    return next((p for p in reversed(active) if p.allows_outbound(flow)), None)


def test_newest_wins_over_a_more_specific_older_one_until_it_is_retired():
    spd = Spd()
    narrow, broad = policy(1, [ts("203.0.113.64/28")]), policy(2, [ts("203.0.113.0/24")])
    spd.install(narrow)
    spd.install(broad)
    assert spd.outbound(udp("192.0.2.1", "203.0.113.65")) is broad
    spd.retire(broad.inbound.spi)
    assert spd.outbound(udp("192.0.2.1", "203.0.113.65")) is narrow
    assert spd.outbound(udp("192.0.2.1", "203.0.113.1")) is None
    spd.activate(broad)
    spd.activate(narrow)  # again: it is the newest now
    assert spd.outbound(udp("192.0.2.1", "203.0.113.65")) is narrow
    assert spd.outbound(udp("192.0.2.1", "203.0.113.1")) is broad


def test_ranges_ports_protocol_and_local_selectors_still_decide():
    spd = Spd()
    odd = policy(1, [span("203.0.113.5", "203.0.113.70")])
    dns = policy(2, [ts("203.0.113.0/24", 17, (53, 53))])
    other_src = policy(3, [ts("203.0.113.0/24")], local=[ts("192.0.2.128/25")])
    for p in (odd, dns, other_src):
        spd.install(p)
    assert spd.outbound(udp("192.0.2.1", "203.0.113.70", 53)) is dns
    assert spd.outbound(udp("192.0.2.1", "203.0.113.70", 80)) is odd
    assert spd.outbound(udp("192.0.2.1", "203.0.113.71", 80)) is None
    assert spd.outbound(udp("192.0.2.1", "203.0.113.4", 80)) is None
    assert spd.outbound(udp("192.0.2.200", "203.0.113.71", 80)) is other_src


def test_ipv6_prefixes_and_no_cross_family_match():
    spd = Spd()
    site = policy(1, [ts("2001:db8:1::/48")])
    host = policy(2, [ts("2001:db8:1::7/128")])
    v4_all = policy(3, [ts("0.0.0.0/0")])
    for p in (host, site, v4_all):
        spd.install(p)
    assert spd.outbound(udp("2001:db8::1", "2001:db8:1::7")) is site  # newer than host
    spd.retire(site.inbound.spi)
    assert spd.outbound(udp("2001:db8::1", "2001:db8:1::7")) is host
    assert spd.outbound(udp("2001:db8::1", "2001:db8:1::8")) is None
    assert spd.outbound(udp("192.0.2.1", "203.0.113.9")) is v4_all


def _random_selector(rng: random.Random, v6: bool) -> TrafficSelector:
    if v6:
        base = int(ipaddress.IPv6Address("2001:db8::")) + rng.randrange(1 << 12) * (1 << 100)
        first = base + rng.randrange(1 << 16)
        last = first + rng.choice([0, 1, 255, 1 << 12, 1 << 101])
        start, end = ipaddress.IPv6Address(first), ipaddress.IPv6Address(last)
    else:
        first = int(ipaddress.IPv4Address("203.0.113.0")) + rng.randrange(256)
        last = min(first + rng.choice([0, 1, 3, 17, 64, 255]), (1 << 32) - 1)
        start, end = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
    protocol = rng.choice([0, 0, 17, 6])
    ports = rng.choice([(0, 65535), (5001, 5001), (1000, 2000)])
    return TrafficSelector(start, end, protocol, *ports)


def test_random_policies_and_packets_agree_with_the_linear_walk():
    rng = random.Random(16)
    spd, active, n = Spd(), [], 0
    for round_ in range(400):
        n += 1
        v6 = rng.random() < 0.4
        remote = [_random_selector(rng, v6) for _ in range(rng.choice([1, 1, 2]))]
        p = policy(n, remote)
        spd.install(p)
        active.append(p)
        if round_ % 7 == 0 and active:  # retire one, sometimes bring it back as the newest
            old = active.pop(rng.randrange(len(active)))
            spd.retire(old.inbound.spi)
            if rng.random() < 0.5:
                spd.activate(old)
                active.append(old)
    hits = 0
    for _ in range(3000):
        if rng.random() < 0.4:
            dst = ipaddress.IPv6Address(
                int(rng.choice(active).remote_ts[0].start) + rng.randrange(3)
            )
            packet = udp("2001:db8::1", str(dst), rng.choice([5001, 1500, 9]))
        else:
            dst = ipaddress.IPv4Address(
                int(ipaddress.IPv4Address("203.0.113.0")) + rng.randrange(260)
            )
            packet = udp("192.0.2.1", str(dst), rng.choice([5001, 1500, 9]))
        expected = linear(active, packet)
        assert spd.outbound(packet) is expected, packet.hex()
        hits += expected is not None
    assert hits > 1000  # the comparison covered matches, not only misses
