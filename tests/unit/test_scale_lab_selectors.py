"""The scale lab's selectors: distinct per tunnel, inside the lab's ranges and clear of the
addresses its links and sites use."""

import ipaddress

import pytest

from ikepulse.testing.scale_lab import PAIRS4, host, ikepulse_tunnels, swanctl_tunnels

LAB_USED = {"198.51.100.1", "198.51.100.2", "192.0.2.1", "192.0.2.2"} | {
    f"203.0.113.{i}" for i in range(128)
}


@pytest.mark.parametrize("family", [4, 6])
def test_ten_thousand_tunnels_have_distinct_selector_pairs(family):
    pairs = {(host("left", i, family), host("right", i, family)) for i in range(10_000)}
    assert len(pairs) == 10_000


def test_ipv4_hosts_stay_in_documentation_ranges_and_off_the_lab_links():
    hosts = {host(side, i, 4) for side in ("left", "right") for i in range(PAIRS4)}
    assert not hosts & LAB_USED
    nets = [ipaddress.ip_network(n) for n in ("203.0.113.0/24", "198.51.100.0/24")]
    assert all(any(ipaddress.ip_address(h) in net for net in nets) for h in hosts)
    with pytest.raises(ValueError):
        host("left", PAIRS4, 4)


def test_both_configurations_carry_the_ipv4_pairs():
    toml = ikepulse_tunnels(2, side="left", local_addr="192.0.2.2",
                            remote_addr="198.51.100.2", family=4)  # fmt: skip
    swanctl = swanctl_tunnels(2, side="right", local_addr="198.51.100.2", remote_addr="%any")
    assert 'local_ts = ["203.0.113.129/32"]' in toml
    assert 'remote_ts = ["198.51.100.128/32"]' in toml
    assert "local_ts = 198.51.100.128/32" in swanctl
    assert "remote_ts = 203.0.113.129/32" in swanctl
