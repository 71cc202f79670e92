"""TCP through two ikepulse gateways with TUN offloads on and off (runtime/offload.py):
super-packets split on the way in, segments coalesced on the way out, IPv4 and IPv6."""

from __future__ import annotations

import pytest
from test_dataplane import transfer

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, ikepulse_conf

pytestmark = pytest.mark.lab

NETS = {"left": LEFT_NET + ",2001:db8:1::/64", "right": RIGHT_NET + ",2001:db8:2::/64"}


def gateways(lab, offload: bool):
    setting = f"offload = {str(offload).lower()}\n"
    daemons = []
    for side, ns, local, remote in (
        ("right", lab.right, lab.right_addr, lab.left_addr),
        ("left", lab.left, lab.left_addr, lab.right_addr),
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
            )
        )
        daemons.append(daemon)
    daemons[1].cli("up", "lab")
    return daemons


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_tcp_arrives_intact_both_ways_over_ipv4_and_ipv6(lab, offload, monkeypatch):
    monkeypatch.delenv("IKEPULSE_LAB_OFFLOAD", raising=False)  # this test sets it itself
    right, left = gateways(lab, offload)
    transfer(lab.left_site, lab.right_site, "203.0.113.66", size=3_000_001)
    transfer(lab.right_site, lab.left_site, "203.0.113.2", size=3_000_001)
    transfer(lab.left_site, lab.right_site, "2001:db8:2::2", size=3_000_001)
    transfer(lab.right_site, lab.left_site, "2001:db8:1::2", size=1_000_003)
    for daemon in (left, right):
        counters = daemon.counters()
        assert not counters.get("offload_drops") and not counters.get("tun_write_errors")
        # super-packets were split and segments coalesced, only with offloads on
        assert bool(counters.get("tso_segments")) is offload
        assert bool(counters.get("gro_segments")) is offload
