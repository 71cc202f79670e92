"""The flood of bench/flood.py: spoofed IKE_SA_INIT requests plus garbage, from a raw socket.

    flood_sender.py TEMPLATE_HEX[,TEMPLATE_HEX...] TARGET RATE SECONDS FIRST_SOURCE SOURCES

Sends RATE IKE_SA_INIT requests a second (the templates in turn, IKE_SA_INIT or IKEv1 MM1
and AM1, each with a fresh initiator SPI or cookie each time,
from SOURCES addresses counted up from FIRST_SOURCE, ports varied) and RATE garbage datagrams
a second (random bytes to port 500, random "ESP" to port 4500, a broken IKE header behind a
non-ESP marker to port 4500) for SECONDS; prints one JSON line with what it sent. Run it as
root in a namespace whose routes lead to TARGET; only documentation addresses are used.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time

TICK = 0.005


def udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """IPv4 + UDP (checksum 0: none, RFC 768) around ``payload``."""
    length = 20 + 8 + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return header + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def main() -> None:
    templates, target = [bytes.fromhex(t) for t in sys.argv[1].split(",")], sys.argv[2]
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    first, count = ipaddress.ip_address(sys.argv[5]), int(sys.argv[6])
    sources = [str(first + n) for n in range(count)]
    rng = random.Random(7)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    garbage = []
    for n in range(1024):
        src, sport = sources[n % count], 1024 + n
        kind = n % 3
        if kind == 0:
            body, dport = os.urandom(rng.randrange(8, 400)), 500
        elif kind == 1:
            body, dport = os.urandom(rng.randrange(24, 400)), 4500
        else:
            body, dport = b"\0\0\0\0" + os.urandom(8) + os.urandom(rng.randrange(20, 300)), 4500
        garbage.append(udp_packet(src, sport, target, dport, body))
    sent = {"ike_sa_init": 0, "garbage": 0, "errors": 0}
    per_tick = rate * TICK
    start = time.monotonic()
    owed = 0.0
    n = 0
    while (now := time.monotonic()) < start + seconds:
        owed = rate * (now - start) - sent["ike_sa_init"]
        burst = min(int(owed), int(per_tick * 4) + 1)
        for _ in range(burst):
            n += 1
            spi = n.to_bytes(8, "big")
            src = sources[n % count]
            template = templates[n % len(templates)]
            packet = udp_packet(src, 500 + n % 7, target, 500, spi + template[8:])
            for data in (packet, garbage[n % len(garbage)]):
                try:
                    sock.sendto(data, (target, 0))
                except OSError:
                    sent["errors"] += 1
            sent["ike_sa_init"] += 1
            sent["garbage"] += 1
        if burst == 0:
            time.sleep(TICK / 2)
    sent["seconds"] = round(time.monotonic() - start, 3)
    sent["rate_ike_sa_init"] = round(sent["ike_sa_init"] / sent["seconds"])
    print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    main()
