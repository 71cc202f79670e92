"""TCP through two ikepulse gateways with TUN offloads on and off, IPv4 and IPv6: with
offloads on both, super-packets travel whole in ESP with Next Header 253 (esp/vnet.py),
fragmented by the kernel; against strongSwan they are split and coalesced
(runtime/offload.py) and strongSwan never sees Next Header 253."""

from __future__ import annotations

import pytest
from test_dataplane import transfer, up

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, Sniffer, ikepulse_conf

pytestmark = pytest.mark.lab

NETS = {"left": LEFT_NET + ",2001:db8:1::/64", "right": RIGHT_NET + ",2001:db8:2::/64"}


OUTER6 = ("2001:db8:ff::1", "2001:db8:ff::2")


def outer_ipv6(lab) -> tuple[str, str]:
    """IPv6 on the link between the gateways, for IKE and ESP over IPv6."""
    for ns, ifname, address in ((lab.left, "vl0", OUTER6[0]), (lab.right, "vr0", OUTER6[1])):
        ns.run("sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=0")
        ns.run("ip", "-6", "addr", "add", f"{address}/64", "dev", ifname, "nodad")
    return OUTER6


def gateways(lab, offload: bool, encap: bool = False, outer6: bool = False):
    setting = f"offload = {str(offload).lower()}\n"
    extra = "encap = true\n" if encap else ""
    left_addr, right_addr = outer_ipv6(lab) if outer6 else (lab.left_addr, lab.right_addr)
    daemons = []
    for side, ns, local, remote in (
        ("right", lab.right, right_addr, left_addr),
        ("left", lab.left, left_addr, right_addr),
    ):
        other = "left" if side == "right" else "right"
        daemon = lab.ikepulse(ns, "ikepulse" if side == "left" else "ikepulse-right")
        daemon.start(
            setting
            + ikepulse_conf(
                side=side,
                local_addr=local,
                remote_addr=remote,
                local_ts=NETS[side],
                remote_ts=NETS[other],
                extra=extra,
            )
        )
        daemons.append(daemon)
    daemons[1].cli("up", "lab")
    return daemons


@pytest.mark.parametrize(
    "offload, encap, outer6",
    [(True, False, False), (True, True, False), (True, False, True), (True, True, True)]
    + [(False, False, False)],
    ids=["offload", "offload-udp", "offload-outer-ipv6", "offload-udp-outer-ipv6", "no-offload"],
)
def test_tcp_arrives_intact_both_ways_over_ipv4_and_ipv6(lab, offload, encap, outer6, monkeypatch):
    monkeypatch.delenv("IKEPULSE_LAB_OFFLOAD", raising=False)  # this test sets it itself
    right, left = gateways(lab, offload, encap, outer6)
    capture = None if outer6 else Sniffer(lab.right, "vr0", 3.0)
    transfer(lab.left_site, lab.right_site, "203.0.113.66", size=3_000_001)
    if capture is not None:
        packets = capture.packets()
        clear = bytes((i * 7919) % 251 for i in range(1000, 1040))  # of test_dataplane's data
        assert packets and not any(clear in p for p in packets)
        assert {p[9] for p in packets} <= {50, 17}  # ESP, ESP in UDP (and IKE)
        fragments = [p for p in packets if int.from_bytes(p[6:8], "big") & 0x3FFF]
        assert bool(fragments) is offload  # whole super-packets, fragmented by the kernel
    transfer(lab.right_site, lab.left_site, "203.0.113.2", size=3_000_001)
    transfer(lab.left_site, lab.right_site, "2001:db8:2::2", size=3_000_001)
    transfer(lab.right_site, lab.left_site, "2001:db8:1::2", size=1_000_003)
    for daemon in (left, right):
        assert daemon.status()[0]["children"][0]["vnet"] is offload
        counters = daemon.counters()
        assert not counters.get("offload_drops") and not counters.get("tun_write_errors")
        assert not counters.get("vnet_drops") and not counters.get("send_errors")
        # with offloads on both ends, super-packets went whole and none was split
        assert counters.get("vnet_sent", 0) > (100 if offload else -1)
        assert bool(counters.get("vnet_sent")) is offload
        assert not counters.get("tso_segments")


def test_offload_against_strongswan_splits_and_never_sends_next_header_253(lab, monkeypatch):
    monkeypatch.setenv("IKEPULSE_LAB_OFFLOAD", "on")
    _, daemon = up(lab)
    transfer(lab.left_site, lab.right_site, "203.0.113.66", size=3_000_001)
    transfer(lab.right_site, lab.left_site, "203.0.113.2", size=3_000_001)
    assert daemon.status()[0]["children"][0]["vnet"] is False
    counters = daemon.counters()
    assert not counters.get("vnet_sent") and not counters.get("vnet_drops")
    assert counters.get("tso_segments") and counters.get("gro_segments")
    assert not counters.get("offload_drops") and not counters.get("tun_write_errors")
