"""IKE_SA + CHILD_SA setups per second with certificates against a real strongSwan: a
strongSwan initiator opens N SAs at once to an ikepulse responder and, as the baseline, to a
strongSwan responder, with the same certificates (made by strongSwan's ``pki``); ``psk``
is the baseline without certificates.

    sudo .venv/bin/python bench/cert_setups.py [--sas 200] [--kinds psk,ecdsa256,rsa2048]

The left gateway (strongSwan) fires N vici ``initiate`` commands without waiting; the
figure is N divided by the time until its N IKE SAs are ESTABLISHED with their CHILD SA
INSTALLED. Responders keep every SA (``unique = never``), strongSwan's cookie and block
thresholds are raised so neither side asks for cookies. Writes bench/results/cert_setups.json.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

import vici

from ikepulse.testing.lab import Lab, ikepulse_conf, lab_unavailable, swanctl_conf, wait_for
from ikepulse.testing.lab_pki import (
    LabPki,
    ikepulse_auth,
    ikepulse_with_certs,
    install_for_charon,
    swanctl_auth,
    swanctl_with_certs,
)
from results_file import write_results

LEFT_DN, RIGHT_DN = "C=CH, O=bench, CN=left", "C=CH, O=bench, CN=right"
KEEP: str | None = None
"""A directory to keep the lab's files in (logs), for debugging."""
RESPONDER_OPTIONS = (
    "cookie_threshold = 100000\n  cookie_threshold_ip = 100000\n  block_threshold = 100000"
)


def _session(uri: str) -> tuple[socket.socket, vici.Session]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(uri[7:])
    return sock, vici.Session(sock)


def _established(session: vici.Session) -> int:
    count = 0
    for entry in session.list_sas():
        for sa in entry.values():
            children = sa.get("child-sas", {}).values()
            if sa["state"] == b"ESTABLISHED" and any(c["state"] == b"INSTALLED" for c in children):
                count += 1
    return count


def _copies(conf: str, count: int) -> str:
    """Connection ``lab`` as ``lab0`` ... ``lab{count-1}``: strongSwan puts new CHILD SAs on
    an existing IKE SA of an equal connection, so each copy differs (in its rekey time)."""
    start, end = conf.index("  lab {"), conf.rindex("}\nsecrets")
    block = conf[start:end]
    copies = "".join(
        block.replace("  lab {", f"  lab{i} {{\n    rekey_time = {14400 + i}s", 1)
        for i in range(count)
    )
    return conf[:start] + copies + conf[end:]


def run(responder: str, kind: str, sas: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ikepulse-certbench-") as tmp:
        lab = Lab(Path(KEEP or tmp)).up()
        try:
            psk = kind == "psk"  # the baseline without certificates
            if not psk:
                pki = LabPki(lab.workdir / "pki")
                ca = pki.ca("ca", "C=CH, O=bench, CN=Bench CA", kind)
                left = pki.issue(ca, "left", LEFT_DN, kind)
                right = pki.issue(ca, "right", RIGHT_DN, kind)
            ids = {} if psk else {"local_id": RIGHT_DN, "remote_id": LEFT_DN}
            if responder == "strongswan":
                charon = lab.charon(lab.right)
                conf = swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr,
                                    extra="unique = never", **ids)  # fmt: skip
                if not psk:
                    install_for_charon(charon.workdir, [right], [ca.cert])
                    conf = swanctl_with_certs(conf, swanctl_auth(right, LEFT_DN))
                charon.start(conf, RESPONDER_OPTIONS)
            else:
                daemon = lab.ikepulse(lab.right)
                conf = ikepulse_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr,
                                     side="right", extra='unique = "never"', **ids)  # fmt: skip
                if not psk:
                    conf = ikepulse_with_certs(conf, *ikepulse_auth([right], LEFT_DN, [ca.cert]))
                daemon.start(conf)
            initiator = lab.charon(lab.left, "initiator")
            ids = {} if psk else {"local_id": LEFT_DN, "remote_id": RIGHT_DN}
            conf = swanctl_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr,
                                side="left", **ids)  # fmt: skip
            if not psk:
                install_for_charon(initiator.workdir, [left], [ca.cert])
                conf = swanctl_with_certs(conf, swanctl_auth(left, RIGHT_DN))
            initiator.start(_copies(conf, sas))
            sock, session = _session(initiator.uri)
            try:
                start = time.monotonic()
                for i in range(sas):
                    for _log in session.initiate({"ike": f"lab{i}", "child": "lan", "timeout": -1}):
                        pass
                fired = time.monotonic() - start
                done = wait_for(lambda: _established(session) >= sas and time.monotonic(),
                                120, f"{sas} SAs", interval=0.1)  # fmt: skip
            finally:
                sock.close()
            elapsed = done - start
            return {
                "sas": sas,
                "seconds": round(elapsed, 3),
                "setups_per_second": round(sas / elapsed, 1),
                "seconds_to_fire": round(fired, 3),
            }
        finally:
            lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sas", type=int, default=200)
    parser.add_argument("--kinds", default="psk,ecdsa256,rsa2048")
    args = parser.parse_args()
    if reason := lab_unavailable():
        raise SystemExit(f"cannot run: {reason}")
    results: dict = {}
    for kind in args.kinds.split(","):
        for responder in ("ikepulse", "strongswan"):
            figures = run(responder, kind, args.sas)
            results[f"{kind}-{responder}"] = figures
            print(f"{kind:9s} strongSwan -> {responder:10s} {figures['setups_per_second']:7.1f} "
                  f"setups/s ({args.sas} SAs in {figures['seconds']:.2f} s)")  # fmt: skip
    write_results("cert_setups", {"sas": args.sas}, results=results)


if __name__ == "__main__":
    main()
