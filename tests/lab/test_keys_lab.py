"""Wireshark key export against a real strongSwan: ``tshark`` decrypts a captured tunnel
with the tables ikepulse wrote (``[daemon] save_keys``).

left 198.51.100.1 (ikepulse, tcpdump on vl0)  <-- veth -->  right 198.51.100.2 (strongSwan)
lsite 203.0.113.2  -- ping through the tunnel (ESP in UDP 4500, libipsec) -->  rsite .66
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from ikepulse.testing.lab import ikepulse_conf, run, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

CASES = [
    ("aes256gcm16-prfsha256-x25519", "aes256gcm16", "ikepulse"),
    ("aes128-sha256-modp2048", "aes128-sha256", "ikepulse"),
    ("aes256gcm16-prfsha256-x25519", "aes256gcm16", "strongswan"),
]


def tshark(capture, keys_dir, *args: str) -> str:
    """tshark over the capture, with ``keys_dir`` as its configuration directory: the two
    exported tables are exactly the UAT files Wireshark reads from there."""
    return subprocess.run(
        ["tshark", "-r", str(capture), "-o", "esp.enable_encryption_decode:TRUE", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"WIRESHARK_CONFIG_DIR": str(keys_dir), "HOME": str(keys_dir), "PATH": "/usr/bin"},
    ).stdout


@pytest.mark.parametrize(
    ("ike", "esp", "initiator"), CASES, ids=[f"{c[0]}-{c[2]}-initiates" for c in CASES]
)
def test_tshark_decrypts_ike_auth_and_esp(lab, tmp_path, ike, esp, initiator):
    keys = tmp_path / "keys"
    keys.mkdir()
    capture = tmp_path / "tunnel.pcap"
    tcpdump = lab.left.popen(
        ["tcpdump", "-i", "vl0", "--immediate-mode", "-U", "-w", str(capture), "udp"],
        tmp_path / "tcpdump.log",
    )
    wait_for(lambda: capture.exists() and capture.stat().st_size > 0, 10, "tcpdump to start")
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr, remote_addr=lab.left_addr, proposals=ike, esp_proposals=esp
        )
    )
    daemon = lab.ikepulse(lab.left)
    # the first lines land in the [daemon] table the lab writes before the connections
    daemon.start(
        f'save_keys = "{keys}"\n'
        + ikepulse_conf(
            local_addr=lab.left_addr, remote_addr=lab.right_addr, proposals=ike, esp_proposals=esp
        )
    )
    assert "writing IKE and ESP keys" in daemon.log.read_text()
    if initiator == "ikepulse":
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan", timeout=30)
        wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the CHILD SA")
    ping = lab.left_site.run("ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.66")
    assert ping.returncode == 0, ping.stdout
    time.sleep(0.5)  # the last reply on its way to the capture file
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(10)

    (ike_line,) = (keys / "ikev2_decryption_table").read_text().splitlines()
    (ours,) = daemon.status()
    assert ike_line.startswith(f"{ours['spi_i']},{ours['spi_r']},")
    assert len((keys / "esp_sa").read_text().splitlines()) == 2
    assert ike_line.split(",")[2] not in daemon.log.read_text()  # keys never in the log

    # IKE_AUTH decrypted: the initiator's identity inside the SK payload
    fields = ("-Y", "isakmp.exchangetype == 35", "-T", "fields", "-e", "isakmp.id.data.fqdn")
    ids = tshark(capture, keys, *fields).split()
    first, second = ("left", "right") if initiator == "ikepulse" else ("right", "left")
    assert ids == [f"{first}.example,{second}.example", f"{second}.example"]  # IDi, IDr; IDr
    assert run("tshark", "-r", str(capture), *fields).stdout.split() == []  # without the keys
    # ESP decrypted: the pings inside, both ways, between the site hosts
    icmp = tshark(capture, keys, "-Y", "esp && icmp", "-T", "fields", "-e", "ip.src", "-e",
                  "ip.dst", "-e", "icmp.type")  # fmt: skip
    inner = {tuple(line.split("\t")) for line in icmp.splitlines()}
    assert any(("203.0.113.2" in s and "203.0.113.66" in d and t == "8") for s, d, t in inner)
    assert any(("203.0.113.66" in s and "203.0.113.2" in d and t == "0") for s, d, t in inner)
