"""updown hooks fed by a real exchange in memory, and a reload of the running connections.

left (hooks on)                               right
IKE_SA_INIT, IKE_AUTH -->                     (CHILD SA up: up-client)
CREATE_CHILD_SA (rekey CHILD) -->             (same tunnel: no hook)
CREATE_CHILD_SA (rekey IKE) -->               (same tunnel, new PLUTO_UNIQUEID later)
IKE_SA_INIT, IKE_AUTH (reauth), D(old) -->    (same tunnel: no hook)
INFORMATIONAL {D(IKE)} -->                    (down-client, same IKEPULSE_TUNNEL_ID)
"""

from __future__ import annotations

import dataclasses

from ikepulse.config.build import liveness_policy
from ikepulse.core.connection import StartAction, Updown
from ikepulse.core.events import IkeSaDeleted, PeerDead
from ikepulse.core.state import IkeState
from ikepulse.runtime.updown import Hooks
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle

HOOK = Updown("/bin/true", events=True, timeout=5.0)


class Feed:
    """Left's events, as the daemon hands them to the hooks."""

    def __init__(self, peer) -> None:
        self.peer, self.seen = peer, 0
        manager = peer.manager
        self.hooks = Hooks(
            lambda c, ch: manager.connection(c).child(ch), lambda c, r: manager.identities(c, r)
        )

    def runs(self) -> list:
        events = self.peer.drain_events()[self.seen :]
        self.seen += len(events)
        return [run for event in events for run in self.hooks.on_event(event)]


def up_with_hook():
    a, b = make_peers({"child": {"updown": HOOK}})
    feed, clock = Feed(a), Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    return a, b, feed, clock


def test_up_gives_strongswans_environment():
    a, b, feed, clock = up_with_hook()
    (run,) = feed.runs()
    env = run.env
    assert run.updown is HOOK and run.tunnel_id == "site/lan"
    assert env["PLUTO_VERB"] == "up-client" and env["PLUTO_VERSION"] == "1.1"
    assert env["PLUTO_CONNECTION"] == "lan" and env["PLUTO_PROTO"] == "esp"  # the child
    assert env["IKEPULSE_CONNECTION"] == "site"
    assert (env["PLUTO_ME"], env["PLUTO_PEER"]) == ("198.51.100.1", "198.51.100.2")
    assert (env["PLUTO_MY_ID"], env["PLUTO_PEER_ID"]) == ("left.example", "right.example")
    assert env["PLUTO_MY_CLIENT"] == "203.0.113.0/26"
    assert env["PLUTO_PEER_CLIENT"] == "203.0.113.64/26"
    assert (env["PLUTO_MY_PORT"], env["PLUTO_PEER_PORT"], env["PLUTO_MY_PROTOCOL"]) == (
        "0",
        "0",
        "0",
    )
    assert env["PLUTO_REQID"] == "1" and env["PLUTO_UNIQUEID"] == "1"
    assert "PLUTO_UDP_ENC" not in env  # no NAT
    (status,) = a.manager.status(0.0, lambda spi: {})
    assert env["IKEPULSE_SPI_IN"] == status["children"][0]["spi_in"]


def test_rekeys_and_reauthentication_are_not_down_and_up():
    a, b, feed, clock = up_with_hook()
    (up,) = feed.runs()
    a.manager.renew("site", clock.now)  # CHILD SA
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert feed.runs() == []
    a.manager.renew("site", clock.now, ike=True)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert feed.runs() == []
    a.manager.renew("site", clock.now, reauth=True)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert feed.runs() == []
    a.manager.delete("site", clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    (down,) = feed.runs()
    assert down.env["PLUTO_VERB"] == "down-client"
    assert down.env["IKEPULSE_TUNNEL_ID"] == up.env["IKEPULSE_TUNNEL_ID"] == "site/lan"
    assert down.env["PLUTO_REQID"] == up.env["PLUTO_REQID"]
    assert down.env["PLUTO_UNIQUEID"] != up.env["PLUTO_UNIQUEID"]  # as strongSwan's changes
    assert down.env["IKEPULSE_SPI_IN"] != up.env["IKEPULSE_SPI_IN"]  # the SA it ended with


def test_a_dead_peer_gives_down_then_the_opt_in_verb():
    policy = liveness_policy(dpd_delay=5, dpd_timeout=10)
    a, b = make_peers({"child": {"updown": HOOK}, "liveness": policy}, {"liveness": policy})
    feed, clock = Feed(a), Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    feed.runs()
    run_until_idle(a, b, clock, drop=lambda d: True, until=clock.now + 60)
    verbs = [run.env["PLUTO_VERB"] for run in feed.runs()]
    assert verbs == ["down-client", "peer-dead"]


def test_without_opt_in_no_extra_verbs():
    policy = liveness_policy(dpd_delay=5, dpd_timeout=10)
    quiet = dataclasses.replace(HOOK, events=False)
    a, b = make_peers({"child": {"updown": quiet}, "liveness": policy}, {"liveness": policy})
    feed, clock = Feed(a), Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    feed.runs()
    run_until_idle(a, b, clock, drop=lambda d: True, until=clock.now + 60)
    assert [run.env["PLUTO_VERB"] for run in feed.runs()] == ["down-client"]


def test_reload_deletes_changed_and_removed_and_keeps_the_rest():
    a, b = make_peers()
    site = a.manager.connections[0]
    other = dataclasses.replace(site, name="other")
    gone = dataclasses.replace(site, name="gone")
    a.manager.replace_connections([site, other, gone], 0.0)
    b.manager.replace_connections([b.manager.connections[0]], 0.0)
    clock = Clock()
    for name in ("site", "other", "gone"):
        a.manager.initiate(name, LEFT, RIGHT, clock.now)
        run_until_idle(a, b, clock, until=clock.now + 0.001)
    before = {s["connection"]: s for s in a.manager.status(0.0, lambda spi: {})}
    assert set(before) == {"site", "other", "gone"}
    a.drain_events()
    seen = len(a.events)
    changed = dataclasses.replace(other, start_action=StartAction.START)
    added = dataclasses.replace(site, name="added")
    diff = a.manager.replace_connections([dataclasses.replace(site), changed, added], clock.now)
    assert (diff.added, diff.changed, diff.removed, diff.unchanged) == (
        ("added",),
        ("other",),
        ("gone",),
        ("site",),
    )
    run_until_idle(a, b, clock, until=clock.now + 1)
    deleted = {e.connection for e in a.events[seen:] if isinstance(e, IkeSaDeleted)}
    assert deleted == {"other", "gone"}
    assert not [e for e in a.events[seen:] if isinstance(e, PeerDead)]  # closed, not dead
    after = {s["connection"]: s for s in a.manager.status(0.0, lambda spi: {})}
    assert list(after) == ["site"]
    assert after["site"]["state"] == IkeState.ESTABLISHED.name
    assert after["site"]["children"] == before["site"]["children"]  # same SPIs, untouched
    assert a.manager.connection("added") == added
