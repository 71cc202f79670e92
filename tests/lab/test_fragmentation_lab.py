"""IKE fragmentation (RFC 7383) against strongSwan, with IP fragments dropped on the path.

left 198.51.100.1 (ikepulse)  <-- veth -->  right 198.51.100.2 (strongSwan)

The left site is offered as N_TS /32 selectors (its /26 host by host, then
203.0.113.128 upwards), the right site as its /26: IKE_AUTH and every CREATE_CHILD_SA for
the child carry about 1.9 KB of selectors both ways, beyond fragment_size (1280, both
sides) and beyond the veth's 1500-byte MTU. (Many /32s on strongSwan's *local* side would
not install: libipsec routes each pair, and routes to one peer /32 from several local ones
collide.) Both gateways drop
IP fragments where they arrive (first fragments by their MF bit, the others by their
offset), in a prerouting chain ahead of defragmentation: a locally sent datagram is cut
into IP fragments only after the output and postrouting hooks, so no sender-side rule
would ever see them. Only IKE fragmentation gets these messages through.
"""

from __future__ import annotations

import json
import re

import pytest

from ikepulse.testing.lab import RIGHT_NET, ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

N_TS = 100
LEFT_HOSTS = ",".join(f"203.0.113.{i}/32" for i in [*range(64), *range(128, 128 + N_TS - 64)])
QUICK = "retransmit_timeout = 1.0\nretransmit_tries = 2"
"""ikepulse gives up after about 4 s (1 s, 1.8 s, 3.2 s) when nothing gets through."""
FRAGMENT_DROP = """table inet ipfrag {
  chain prerouting {
    type filter hook prerouting priority -450;
    ip frag-off & 0x2000 != 0 counter drop
    ip frag-off & 0x1fff != 0 counter drop
  }
}
"""


def drop_ip_fragments(lab) -> None:
    for ns in (lab.left, lab.right):
        rules = lab.workdir / f"ipfrag-{ns.name}.nft"
        rules.write_text(FRAGMENT_DROP)
        ns.run("nft", "-f", str(rules))


def ip_fragments_dropped(lab) -> int:
    total = 0
    for ns in (lab.left, lab.right):
        listing = ns.run("nft", "list", "table", "inet", "ipfrag").stdout
        total += sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))
    return total


def start(lab, fragmentation: str = "yes"):
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr,
            remote_addr=lab.left_addr,
            local_ts=RIGHT_NET,
            remote_ts=LEFT_HOSTS,
            extra="fragmentation = yes",
        ),
        "fragment_size = 1280\n  retransmit_timeout = 1.0\n  retransmit_tries = 2",
    )
    daemon = lab.ikepulse(lab.left)
    daemon.start(
        ikepulse_conf(
            local_addr=lab.left_addr,
            remote_addr=lab.right_addr,
            local_ts=LEFT_HOSTS,
            remote_ts=RIGHT_NET,
            extra=f'fragmentation = "{fragmentation}"\nfragment_size = 1280\n{QUICK}',
        )
    )
    drop_ip_fragments(lab)
    return charon, daemon


def ping(lab) -> None:
    for source, target in ((lab.left_site, "203.0.113.66"), (lab.right_site, "203.0.113.2")):
        result = source.run("ping", "-c", "2", "-i", "0.2", "-W", "1", target, check=False)
        assert result.returncode == 0, f"{target}: {result.stdout}"


def counters(daemon) -> dict:
    return json.loads(daemon.cli("status", "--json").stdout)["counters"]


def children(charon) -> list[dict]:
    (sa,) = charon.list_sas()
    return sa["children"]


def rekeyed(charon, daemon, ours: bool) -> None:
    """Rekey the child from ``ours`` (ikepulse) or strongSwan's side and wait for it."""
    old = {c["spi-in"] for c in children(charon)}
    if ours:
        daemon.cli("rekey", "lab", "--child", "lan")
    else:
        charon.swanctl("--rekey", "--child", "lan")
    wait_for(
        lambda: {c["spi-in"] for c in children(charon) if c["state"] == "INSTALLED"} - old,
        10,
        "the rekeyed CHILD SA",
    )


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
def test_large_ike_auth_and_create_child_sa_cross_in_ike_fragments(lab, initiator):
    charon, daemon = start(lab)
    if initiator == "ikepulse":
        daemon.cli("up", "lab")
    else:
        charon.swanctl("--initiate", "--child", "lan", timeout=30)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the CHILD SA")
    (child,) = daemon.status()[0]["children"]
    assert len(child["local_ts"]) == N_TS and child["remote_ts"] == [RIGHT_NET]
    ping(lab)
    after_auth = counters(daemon)
    assert after_auth["fragmented_messages_sent"] == 1  # our IKE_AUTH message
    assert after_auth["fragmented_messages_received"] == 1  # strongSwan's
    # CREATE_CHILD_SA (a rekey carries the selectors), started by each side in turn.
    rekeyed(charon, daemon, ours=True)
    rekeyed(charon, daemon, ours=False)
    ping(lab)
    final = counters(daemon)
    assert final["fragmented_messages_sent"] == 3
    assert final["fragmented_messages_received"] == 3
    assert final.get("fragments_dropped_invalid_icv", 0) == 0
    log = charon.log.read_text()
    assert "splitting IKE message" in log and "reassembled fragmented IKE message" in log
    assert ip_fragments_dropped(lab) == 0  # nothing was IP-fragmented


@pytest.mark.parametrize("initiator", ["ikepulse", "strongswan"])
def test_without_ike_fragmentation_the_same_setup_fails(lab, initiator):
    charon, daemon = start(lab, fragmentation="no")
    if initiator == "ikepulse":
        result = daemon.cli("up", "lab", check=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr
    else:
        out = charon.swanctl("--initiate", "--child", "lan", check=False, timeout=30)
        assert "establishing CHILD_SA 'lan' failed" in out or "failed" in out
    assert not any(sa["children"] for sa in daemon.status())
    ours = [line for line in charon.log.read_text().splitlines() if "parsed IKE_SA_INIT" in line]
    assert ours and not any("FRAG_SUP" in line for line in ours)  # we never announce it
    assert counters(daemon).get("fragmented_messages_sent", 0) == 0
    assert ip_fragments_dropped(lab) >= 2  # the IKE_AUTH request, cut by IP, never arrived
