"""Traffic through ikepulse's userspace ESP and strongSwan's kernel-libipsec (RFC 4303, 3948).

lsite 203.0.113.2 -- left gw (ikepulse, TUN ikp0) == ESP in UDP 4500 == right gw
(strongSwan, libipsec ipsec0) -- rsite 203.0.113.66
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

import pytest
from test_interop import start

from ikepulse.testing.lab import LEFT_NET, Sniffer, ikepulse_conf, wait_for

pytestmark = pytest.mark.lab

ESP_SUITES = ["aes256gcm16", "aes128-sha256", "chacha20poly1305", "aes256-sha512"]


def ping(ns, address: str, count: int = 3) -> subprocess.CompletedProcess:
    return ns.run("ping", "-c", str(count), "-i", "0.2", "-W", "1", address, check=False)


def up(lab, **kw):
    charon, daemon = start(lab, **kw)
    daemon.cli("up", "lab")
    return charon, daemon


@pytest.mark.parametrize("esp", ESP_SUITES)
def test_sites_ping_each_other(lab, esp):
    charon, daemon = up(lab, esp=esp, dual_stack=True)
    for source, target in (
        (lab.left_site, "203.0.113.66"),
        (lab.right_site, "203.0.113.2"),
        (lab.left_site, "2001:db8:2::2"),
        (lab.right_site, "2001:db8:1::2"),
    ):
        assert ping(source, target).returncode == 0, target
    (child,) = daemon.status()[0]["children"]
    assert child["local_ts"] == [LEFT_NET, "2001:db8:1::/64"]
    assert child["packets_in"] >= 12 and child["packets_out"] >= 12
    assert child["last_inbound"] is not None and child["last_outbound"] is not None
    (their_child,) = charon.list_sas()[0]["children"]
    assert int(their_child["packets-in"]) >= 12


@pytest.mark.parametrize("esp", ESP_SUITES)
def test_sites_ping_through_nat(nat_lab, esp):
    charon, daemon = up(nat_lab, esp=esp)
    assert daemon.status()[0]["nat_local"]
    assert ping(nat_lab.left_site, "203.0.113.66").returncode == 0
    assert ping(nat_lab.right_site, "203.0.113.2").returncode == 0


TRANSFER = """
import hashlib, socket, sys
mode, host, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "serve":
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.create_server((host, 5001), family=family)
    srv.settimeout(20)
    conn, _ = srv.accept()
    digest, total = hashlib.sha256(), 0
    while chunk := conn.recv(65536):
        digest.update(chunk)
        total += len(chunk)
    print(total, digest.hexdigest())
else:
    data = bytes((i * 7919) % 251 for i in range(size))
    with socket.create_connection((host, 5001), timeout=20) as conn:
        conn.sendall(data)
    print(len(data), hashlib.sha256(data).hexdigest())
"""


def transfer(sender, receiver, receiver_addr: str, size: int = 2_000_000) -> None:
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            receiver.name,
            sys.executable,
            "-c",
            TRANSFER,
            "serve",
            receiver_addr,
            str(size),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    sent = sender.run(
        sys.executable, "-c", TRANSFER, "send", receiver_addr, str(size), timeout=60
    ).stdout.split()
    received = server.communicate(timeout=30)[0].split()
    assert received == sent
    assert int(sent[0]) == size


def test_tcp_transfer_arrives_intact_both_ways(lab):
    up(lab)
    transfer(lab.left_site, lab.right_site, "203.0.113.66")
    transfer(lab.right_site, lab.left_site, "203.0.113.2")


def test_tcp_bursts_from_strongswan_overflow_no_socket_of_ours(lab):
    # TCP leaves strongSwan in bursts of segments; ikepulse's sockets queue them while it is
    # busy (runtime.tun.RECEIVE_BUFFER) rather than drop them: the kernel's default buffer
    # overflowed some 350 times in 10 s of this, each a TCP retransmission.
    up(lab)
    server = lab.left_site.popen(["iperf3", "-s", "-1", "-B", "203.0.113.2"], lab.workdir / "s.log")
    time.sleep(0.5)
    before = lab.left.udp_receive_buffer_errors()
    lab.right_site.run("iperf3", "-c", "203.0.113.2", "-t", "10", "-b", "30M", timeout=60)
    assert server.wait(10) == 0
    assert lab.left.udp_receive_buffer_errors() == before


def esp_from_right(packets: list[bytes]) -> list[bytes]:
    """ESP-in-UDP payloads sent by strongSwan (198.51.100.2:4500) to ikepulse."""
    out = []
    for pkt in packets:
        ihl = (pkt[0] & 0x0F) * 4
        if pkt[9] == 17 and pkt[12:16] == socket.inet_aton("198.51.100.2"):
            sport, dport = struct.unpack("!HH", pkt[ihl : ihl + 4])
            payload = pkt[ihl + 8 :]
            if sport == 4500 and len(payload) > 8 and payload[:4] != bytes(4):
                out.append(payload)
    return out


def inject(ns, payload: bytes) -> None:
    ns.run(
        sys.executable,
        "-c",
        "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.sendto(bytes.fromhex(sys.argv[1]), ('198.51.100.1', 4500))",
        payload.hex(),
    )


def test_replayed_and_tampered_esp_is_dropped_and_counted(lab):
    charon, daemon = up(lab)
    capture = Sniffer(lab.left, "vl0", 2.0)
    assert ping(lab.right_site, "203.0.113.2", count=2).returncode == 0
    captured = esp_from_right(capture.packets())
    assert captured, "no ESP packet from strongSwan captured"
    before = daemon.status()[0]["children"][0]
    inject(lab.right, captured[0])  # replay
    tampered = bytearray(captured[-1])
    tampered[-3] ^= 0x40
    tampered[5] ^= 0x01  # a fresh sequence number, so the ICV check is what fails
    inject(lab.right, bytes(tampered))
    child = wait_for(
        lambda: (
            (c := daemon.status()[0]["children"][0])["replay_drops"] >= 1
            and c["auth_failures"] >= 1
            and c
        ),
        5,
        "the drops to be counted",
    )
    assert child["packets_in"] == before["packets_in"]
    assert ping(lab.left_site, "203.0.113.66").returncode == 0  # the tunnel keeps working


def test_no_cleartext_leaks_when_the_child_sa_is_gone(lab):
    charon, daemon = up(lab)
    assert ping(lab.left_site, "203.0.113.66", count=1).returncode == 0
    charon.swanctl("--terminate", "--child", "lan")
    wait_for(lambda: daemon.status()[0]["children"] == [], 5, "the CHILD SA to go")
    capture = Sniffer(lab.left, "vl0", 2.5)
    assert ping(lab.left_site, "203.0.113.66", count=3).returncode != 0
    site = socket.inet_aton("203.0.113.0")[:3]
    leaked = [p for p in capture.packets() if p[12:15] == site or p[16:19] == site]
    assert leaked == []
    status = json_counters(daemon)
    assert status.get("no_sa_drops", 0) >= 3


def json_counters(daemon) -> dict:
    import json

    return json.loads(daemon.cli("status", "--json").stdout)["counters"]


def test_trap_triggers_negotiation_and_holds_the_first_packet(lab):
    charon, daemon = start(lab, start_action="trap")
    assert daemon.status() == []
    # The first ping triggers IKE; held packets go out once the CHILD SA is installed.
    result = ping(lab.left_site, "203.0.113.66", count=3)
    assert " 0% packet loss" in result.stdout
    (sa,) = daemon.status()
    assert sa["state"] == "ESTABLISHED"
    assert sa["children"][0]["packets_out"] == 3  # the held echo request went out too
    assert int(charon.list_sas()[0]["children"][0]["packets-in"]) == 3
    assert "triggers negotiation" in daemon.log.read_text()


def test_ikepulse_to_ikepulse_uses_plain_esp(lab):
    right = lab.ikepulse(lab.right, "ikepulse-right")
    right.start(ikepulse_conf(side="right", local_addr=lab.right_addr, remote_addr=lab.left_addr))
    left = lab.ikepulse(lab.left)
    left.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
    left.cli("up", "lab")
    capture = Sniffer(lab.left, "vl0", 2.0)
    assert ping(lab.right_site, "203.0.113.2").returncode == 0
    protocols = {p[9] for p in capture.packets()}
    assert 50 in protocols  # ESP straight in IP, no UDP encapsulation without a NAT
    (sa,) = left.status()
    assert not sa["nat_local"] and not sa["nat_remote"]
    assert sa["local"]["port"] == 4500  # MOBIKE floats to 4500 as strongSwan does
    assert not sa["children"][0]["udp_encap"]


def test_transport_mode_between_two_ikepulse_gateways(lab):
    # strongSwan's kernel-libipsec does tunnel mode only, so both ends are ikepulse here.
    right = lab.ikepulse(lab.right, "ikepulse-right")
    right.start(
        ikepulse_conf(
            local_addr=lab.right_addr,
            remote_addr=lab.left_addr,
            side="right",
            local_ts="dynamic",
            remote_ts="dynamic",
            mode="transport",
        )
    )
    left = lab.ikepulse(lab.left)
    left.start(
        ikepulse_conf(
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            local_ts="dynamic",
            remote_ts="dynamic",
            mode="transport",
        )
    )
    left.cli("up", "lab")
    (child,) = left.status()[0]["children"]
    assert child["mode"] == "TRANSPORT"
    assert child["local_ts"] == ["198.51.100.1/32"] and child["remote_ts"] == ["198.51.100.2/32"]
    capture = Sniffer(lab.right, "vr0", 2.0)
    assert ping(lab.left, "198.51.100.2").returncode == 0
    packets = capture.packets()
    assert {p[9] for p in packets} >= {50}  # ESP arrives ...
    assert 1 not in {p[9] for p in packets}  # ... and no ICMP in the clear
    assert left.status()[0]["children"][0]["packets_in"] >= 3
    assert right.status()[0]["children"][0]["packets_in"] >= 3
    left.stop()
    assert "1000:" not in lab.left.run("ip", "rule").stdout  # the bypass rule is gone
