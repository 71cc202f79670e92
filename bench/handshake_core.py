"""In-memory IKE_SA + CHILD_SA handshakes per second on one core (no sockets, fake clock).

    .venv/bin/python bench/handshake_core.py [--seconds 3]

Prints one line per suite and writes bench/results/handshake_core.json.
"""

from __future__ import annotations

import argparse
import random
import time

from ikepulse.testing import pki
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle
from results_file import write_results

SUITES = {
    "psk x25519 (aes256gcm16-prfsha256-x25519)": "aes256gcm16-prfsha256-x25519",
    "psk modp2048 (aes128-sha256-modp2048)": "aes128-sha256-modp2048",
    "psk ecp384 (aes256-sha384-ecp384)": "aes256-sha384-ecp384",
}
SUITES_DEFAULT = "aes256gcm16-prfsha256-x25519"
CERT_SUITES = {
    "cert RSA-2048 (aes256gcm16-prfsha256-x25519)": "rsa2048",
    "cert ECDSA P-256 (aes256gcm16-prfsha256-x25519)": "ecdsa256",
}
"""Both peers sign with RFC 7427 and validate the other's certificate against one CA."""


def handshakes_per_second(ike: str, seconds: float, cert: str | None = None):
    root = pki.ca("C=CH, O=bench, CN=Bench CA", cert) if cert else None
    issued: dict = {}  # each gateway keeps its certificate and key
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        seed = random.randrange(1 << 30)
        if root is None:
            a, b = make_peers({"ike": ike}, {"ike": ike}, seed=seed)
            clock = Clock()
        else:
            a, b, clock = pki.cert_peers(root, cert, ike=ike, seed=seed, issued=issued)
        sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
        run_until_idle(a, b, clock)
        assert sa.state.name == "ESTABLISHED"
        count += 1
    return count / elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    results = {}
    for label, ike in SUITES.items():
        rate, count = handshakes_per_second(ike, args.seconds)
        results[ike] = {"handshakes_per_second": round(rate, 1), "handshakes": count}
        print(f"{label:50s} {rate:8.1f} handshakes/s  ({count} in {args.seconds:.0f}s)")
    for label, kind in CERT_SUITES.items():
        rate, count = handshakes_per_second(SUITES_DEFAULT, args.seconds, cert=kind)
        results[f"cert-{kind}"] = {"handshakes_per_second": round(rate, 1), "handshakes": count}
        print(f"{label:50s} {rate:8.1f} handshakes/s  ({count} in {args.seconds:.0f}s)")
    print("(both peers run in this one process: each handshake costs two sides' crypto)")
    write_results("handshake_core", {"seconds": args.seconds}, results=results)


if __name__ == "__main__":
    main()
