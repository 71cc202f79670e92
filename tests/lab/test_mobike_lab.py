"""MOBIKE (RFC 4555) against a real strongSwan, mobike = yes on both sides.

Address change (both roles):
  left  198.51.100.1 -> 198.51.100.3 (ikepulse)  ==  right 198.51.100.2 (strongSwan)
  198.51.100.3 is added to vl0, then 198.51.100.1 removed; the tunnel moves, same IKE SPIs.

NAT remap:
  left 192.0.2.2 (ikepulse) -- nat (masquerade) -- right 198.51.100.2 (strongSwan)
  the NAT forgets its mapping and picks another port; ikepulse's liveness check carries NAT-D,
  strongSwan's answer shows the new mapping, ikepulse sends UPDATE_SA_ADDRESSES.
"""

from __future__ import annotations

import sys
import time

import pytest

from ikepulse.testing.lab import ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

MOVED = "198.51.100.3"
DPD = 'dpd_delay = "2s"\ndpd_timeout = "3s"\n'


def reachable(lab) -> bool:
    result = lab.left_site.run("ping", "-c", "1", "-W", "0.2", "203.0.113.66", check=False)
    return result.returncode == 0


def recovery_time(lab, since: float, timeout: float = 15.0) -> float:
    """Seconds from ``since`` until a ping through the tunnel is answered again."""
    wait_for(lambda: reachable(lab), timeout, "ping through the tunnel to recover", 0.0)
    return time.monotonic() - since


def ike_spis(charon) -> list[tuple[str, str]]:
    return [(sa["initiator-spi"], sa["responder-spi"]) for sa in charon.list_sas()]


def move_left(lab) -> float:
    """Add MOVED next to 198.51.100.1 on left's outer link, then remove the old address;
    the time of the removal."""
    left = lab.left
    left.run("sysctl", "-qw", "net.ipv4.conf.vl0.promote_secondaries=1")
    left.run("ip", "addr", "add", f"{MOVED}/24", "dev", "vl0")
    time.sleep(0.5)
    removed = time.monotonic()
    left.run("ip", "addr", "del", "198.51.100.1/24", "dev", "vl0")
    return removed


def start(lab, *, ikepulse_initiates: bool, extra: str = ""):
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr,
            remote_addr="%any" if ikepulse_initiates else lab.left_addr,
            mobike=True,
        )
    )
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=extra))
    if ikepulse_initiates:
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan", timeout=15)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 5, "the CHILD SA")
    return charon, daemon


@pytest.mark.parametrize("ikepulse_initiates", [True, False], ids=["initiator", "responder"])
def test_outer_address_change_moves_the_tunnel(lab, ikepulse_initiates):
    charon, daemon = start(lab, ikepulse_initiates=ikepulse_initiates)
    (sa,) = daemon.status()
    assert sa["mobike"]
    assert sa["local"]["port"] == 4500  # with MOBIKE both sides float to 4500
    assert reachable(lab)
    before = ike_spis(charon)
    removed = move_left(lab)
    took = recovery_time(lab, removed)
    print(
        f"MOBIKE move, ikepulse {'initiator' if ikepulse_initiates else 'responder'}: "
        f"traffic back {took:.2f}s after the old address went away",
        file=sys.stderr,
    )
    assert took < 2.0
    assert ike_spis(charon) == before  # the same IKE SA, no renegotiation
    (theirs,) = charon.list_sas()
    assert theirs["remote-host"] == MOVED
    assert theirs["state"] == "ESTABLISHED"
    (ours,) = daemon.status()
    assert ours["local"]["host"] == MOVED
    # kernel-libipsec cannot update an SA's addresses, so strongSwan rekeys the CHILD SA
    # over the moved IKE SA: one pair stays installed (the old one may still be listed).
    installed = [c for c in theirs["children"] if c["state"] == "INSTALLED"]
    assert len(installed) == 1


def test_address_change_without_mobike_on_the_peer_leaves_the_tunnel_to_liveness(lab):
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr="%any"))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr))
    daemon.cli("up", "lab")
    (sa,) = daemon.status()
    assert not sa["mobike"]
    move_left(lab)
    time.sleep(1.0)
    (sa,) = daemon.status()
    assert sa["local"]["host"] == "198.51.100.1"  # nothing moved


def test_nat_remap_with_mobike_recovers_through_an_update(nat_lab):
    lab = nat_lab
    charon = lab.charon(lab.right)
    charon.start(swanctl_conf(local_addr=lab.right_addr, remote_addr="%any", mobike=True))
    daemon = lab.ikepulse(lab.left)
    daemon.start(ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr, extra=DPD))
    daemon.cli("up", "lab")
    (sa,) = daemon.status()
    assert sa["mobike"] and sa["nat_local"]
    assert reachable(lab)
    old_port = charon.list_sas()[0]["remote-port"]
    before = ike_spis(charon)
    flushed = lab.remap_nat()
    took = recovery_time(lab, flushed)
    print(
        f"NAT remap with MOBIKE: traffic back {took:.2f}s after the remap (dpd_delay 2s)",
        file=sys.stderr,
    )
    (theirs,) = charon.list_sas()
    assert theirs["remote-port"] != old_port
    assert 20000 <= int(theirs["remote-port"]) <= 20999
    assert ike_spis(charon) == before
    assert took < 2.0 + 3.0  # within dpd_delay + dpd_timeout; ~dpd_delay in practice
    counters = daemon.counters()
    assert counters.get("mobike_updates_sent", 0) >= 1
