"""close_action for a peer's delete, and the reconciler's "exactly one SA" (DESIGN.md §4).

left (close_action = start)                 right
             <-- HDR, SK {D(ESP, spi)}          (right's admin closes the CHILD SA alone)
HDR, SK {D(ESP, spi)} -->
HDR, SK {SA, Ni, TSi, TSr} -->                  (CREATE_CHILD_SA: the child is back)

             <-- HDR, SK {D(IKE)}               (right deletes the IKE SA)
HDR, SK {} -->
IKE_SA_INIT, IKE_AUTH ... -->                   (a new IKE SA with the start children)

left                                        right        (both initiate at once)
IKE_SA_INIT (SA1) -->                  <-- IKE_SA_INIT (SA2)
... both established on both sides; after GRACE both pick the same survivor ...
HDR(loser), SK {D(IKE)} -->            <-- HDR(loser), SK {D(IKE)}   (crossing, harmless)
"""

from __future__ import annotations

import pytest

from ikepulse.core.connection import CloseAction, StartAction
from ikepulse.core.events import (
    ChildSaDeleted,
    ChildSaInstalled,
    ChildSaTrapped,
    IkeSaEstablished,
    TunnelRestored,
)
from ikepulse.core.reconcile import GRACE
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle, transfer


def live(peer) -> list:
    return [sa for sa in peer.manager.sas.values() if sa.state is IkeState.ESTABLISHED]


def established(left: dict | None = None, right: dict | None = None):
    a, b = make_peers(left, right)
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.state is IkeState.ESTABLISHED
    (peer,) = b.manager.sas.values()
    return a, b, sa, peer, clock


def closing(action: CloseAction, **extra) -> dict:
    return {"child": {"close_action": action}, **extra}


def one_pair_each(a, b) -> None:
    """Exactly one IKE SA and one CHILD SA pair on both sides, and they are the same."""
    (mine,), (theirs,) = live(a), live(b)
    assert (mine.spi_i, mine.spi_r) == (theirs.spi_i, theirs.spi_r)
    (child,), (peer_child,) = list(mine.children), list(theirs.children)
    assert (child.spi_in, child.spi_out) == (peer_child.spi_out, peer_child.spi_in)


def never_without_child(peer) -> None:
    """Replaying the data plane's instructions: once a CHILD SA was installed, one always
    was (no moment without an SA for the child's traffic)."""
    installed, seen = 0, False
    for event in peer.events:
        if isinstance(event, ChildSaInstalled):
            installed, seen = installed + 1, True
        elif isinstance(event, ChildSaDeleted):
            installed -= 1
            assert installed > 0 or not seen, "a moment without any CHILD SA"


# --- close_action ---------------------------------------------------------------------------


def test_peer_deletes_the_child_alone_and_start_creates_it_again():
    a, b, sa, peer, clock = established(closing(CloseAction.START))
    (theirs,) = peer.children.entries()
    peer.children.delete(theirs, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.state is IkeState.ESTABLISHED and live(a) == [sa]  # the same IKE SA
    assert len(a.of(ChildSaInstalled)) == 2 and a.manager.counters["close_action_children_created"]
    one_pair_each(a, b)


@pytest.mark.parametrize("action", [CloseAction.NONE, CloseAction.TRAP])
def test_peer_deletes_the_child_alone_and_none_or_trap_leave_it_closed(action):
    a, b, sa, peer, clock = established(closing(action, start_action=StartAction.START))
    (theirs,) = peer.children.entries()
    peer.children.delete(theirs, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 60)  # the reconciler does not fight it
    assert list(sa.children) == [] and sa.state is IkeState.ESTABLISHED
    trapped = a.of(ChildSaTrapped)
    assert trapped == ([ChildSaTrapped("site", "lan")] if action is CloseAction.TRAP else [])
    if action is CloseAction.TRAP:  # traffic hits the trap: the CHILD SA comes back
        assert a.manager.acquire("site", clock.now) == 1
        run_until_idle(a, b, clock, until=clock.now + 0.001)
        one_pair_each(a, b)


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_peer_deletes_the_ike_sa_and_start_re_establishes_it(side):
    # The keeper has close_action = start; as the responder it needs the peer's address.
    if side == "initiator":
        a, b, sa, peer, clock = established(closing(CloseAction.START))
        keeper, closer, old = a, b, sa
    else:
        a, b, sa, peer, clock = established(
            None, closing(CloseAction.START, remote_addrs=(LEFT[0],))
        )
        keeper, closer, old = b, a, peer
    closer.manager.delete("site", clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert old.state is IkeState.DELETED
    (restored,) = keeper.of(TunnelRestored)
    assert restored.attempts == 1 and restored.downtime < 0.01
    assert keeper.manager.counters["close_action_restarts"] == 1
    assert not closer.manager.counters["close_action_restarts"]
    one_pair_each(a, b)
    (new,) = live(keeper)
    assert new.initiator  # the keeper re-established it


def test_peer_deletes_the_ike_sa_and_trap_or_none_act_per_child():
    a, b = make_peers(
        closing(CloseAction.TRAP),
        {},
    )
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    b.manager.delete("site", clock.now)
    run_until_idle(a, b, clock, until=clock.now + 60)
    assert sa.state is IkeState.DELETED and live(a) == [] and live(b) == []
    assert a.of(ChildSaTrapped) == [ChildSaTrapped("site", "lan")]
    assert a.of(TunnelRestored) == []


def test_peer_deletes_the_ike_sa_and_none_does_nothing():
    a, b, sa, peer, clock = established(closing(CloseAction.NONE, start_action=StartAction.START))
    b.manager.delete("site", clock.now)
    run_until_idle(a, b, clock, until=clock.now + 60)
    assert sa.state is IkeState.DELETED and live(a) == [] and live(b) == []
    assert a.of(ChildSaTrapped) == [] and len(a.of(IkeSaEstablished)) == 1


def test_our_own_deletes_never_trigger_close_action():
    start = closing(CloseAction.START, rekey_time=100.0)
    a, b, sa, peer, clock = established(start, {**start, "remote_addrs": (LEFT[0],)})
    # Rekeys from both sides, an IKE rekey and a reauthentication: the peer deletes the old
    # CHILD SAs and IKE SAs, none of which is a close.
    (child,) = sa.children
    sa.children.rekey(child, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (peer_child,) = live(b)[0].children
    live(b)[0].children.rekey(peer_child, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    live(b)[0].rekey(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    live(b)[0].reauthenticate(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 30)
    one_pair_each(a, b)
    live(a)[0].reauthenticate(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 30)
    one_pair_each(a, b)
    for peer in (a, b):
        assert not any(n.startswith("close_action") for n in +peer.manager.counters)
        assert peer.of(ChildSaTrapped) == [] and peer.of(TunnelRestored) == []
    # Our admin delete: the peer (close_action = start) re-establishes, we do not.
    a.manager.delete("site", clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    for peer in (a, b):
        counters = peer.manager.counters
        assert not counters["close_action_children_created"]
        assert peer is b or not counters["close_action_restarts"]
    assert b.manager.counters["close_action_restarts"] == 1
    run_until_idle(a, b, clock, until=clock.now + 10)
    one_pair_each(a, b)
    assert not a.manager.counters["overlaps_resolved"]


# --- exactly one SA -------------------------------------------------------------------------


@pytest.mark.parametrize("delay", range(0, 7))
def test_simultaneous_initiation_ends_with_one_ike_and_one_child_sa(delay):
    # Right starts ``delay`` datagram exchanges after left: every interleaving, including
    # INITIAL_CONTACT arriving on an SA that crossed another one.
    start = {"start_action": StartAction.START, "child": {"close_action": CloseAction.START}}
    a, b = make_peers(start, start)
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    for _ in range(delay):
        transfer(a, b, clock)
        transfer(b, a, clock)
    b.manager.initiate("site", RIGHT, LEFT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + GRACE + 1)
    one_pair_each(a, b)
    never_without_child(a)
    never_without_child(b)
    assert a.manager.overlaps("site") == {"ike_sas": 0, "child_sas": 0}
    run_until_idle(a, b, clock, until=clock.now + 600)  # and it stays that way
    one_pair_each(a, b)


def deliver(src, dst, clock, reverse: bool = False, hold: int | None = None) -> list:
    """Hand src's datagrams to dst, in reverse order if asked, keeping back the one at
    index ``hold`` (returned); the clock moves on a bit first."""
    clock.now += 0.01
    datagrams = src.manager.datagrams_to_send(clock.now)
    held = [datagrams.pop(hold)] if hold is not None else []
    for datagram in reversed(datagrams) if reverse else datagrams:
        dst.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, clock.now)
    return held


@pytest.mark.parametrize("seed", range(8))
def test_initial_contact_on_a_crossing_initiation_is_left_to_the_reconciler(seed):
    #   left                                        right
    #                                          <-- IKE_SA_INIT (SA2)
    #   answer (SA2), IKE_SA_INIT (SA1) -->
    #                                          <-- IKE_AUTH (SA2) with INITIAL_CONTACT:
    #                                              right held no other SA yet (held back)
    #   ... SA1 completes on both sides ...
    #   right's IKE_AUTH (SA2) arrives now. Were left to believe its INITIAL_CONTACT, it
    #   would drop SA1 silently while right keeps it, and right's reconciler might delete
    #   SA2: both lost. SA1 was established after SA2 began, so the reconciler decides.
    a, b = make_peers({"start_action": StartAction.START}, {}, seed=seed)
    clock = Clock()
    b.manager.initiate("site", RIGHT, LEFT, clock.now)
    deliver(b, a, clock)  # IKE_SA_INIT (SA2)
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    deliver(a, b, clock)  # answer (SA2), then IKE_SA_INIT (SA1)
    (auth,) = deliver(b, a, clock, hold=0)  # IKE_AUTH (SA2) held; answer (SA1)
    deliver(a, b, clock)  # IKE_AUTH (SA1)
    deliver(b, a, clock)  # answer: SA1 is up on both sides
    assert len(live(a)) == 1 and len(live(b)) == 1
    a.manager.receive_datagram(auth.data, auth.src, auth.dst, clock.now)
    run_until_idle(a, b, clock, until=clock.now + GRACE + 1)
    one_pair_each(a, b)
    never_without_child(a)
    never_without_child(b)


def test_a_duplicate_child_sa_is_deleted_on_both_sides_without_a_gap():
    a, b, sa, peer, clock = established()
    sa.children.create(sa.connection.child("lan"), clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert len(sa.children) == 2 and a.manager.overlaps("site") == {"ike_sas": 0, "child_sas": 1}
    clock.now += 0.5
    peer.children.create(peer.connection.child("lan"), clock.now)  # a third, from the peer
    run_until_idle(a, b, clock, until=clock.now + GRACE - 0.1)
    assert len(sa.children) == 3  # not before the grace
    run_until_idle(a, b, clock, until=clock.now + GRACE + 1)
    one_pair_each(a, b)
    never_without_child(a)
    never_without_child(b)
    assert a.manager.counters["overlaps_resolved"] == 2 or b.manager.counters["overlaps_resolved"]


def test_a_duplicate_ike_sa_the_peer_keeps_is_deleted():
    # unique = no on both sides and no INITIAL_CONTACT: both keep two IKE SAs
    a, b, sa, peer, clock = established()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert len(live(a)) == 2 and a.manager.overlaps("site") == {"ike_sas": 1, "child_sas": 1}
    run_until_idle(a, b, clock, until=clock.now + GRACE)
    one_pair_each(a, b)
    never_without_child(a)
    assert a.manager.counters["duplicate_ike_sas_deleted"] == 1


@pytest.mark.parametrize(
    ("start_action", "close_action", "created"),
    [
        (StartAction.START, CloseAction.NONE, True),
        (StartAction.NONE, CloseAction.START, True),
        (StartAction.TRAP, CloseAction.NONE, False),  # on demand: not ours to bring up
        (StartAction.NONE, CloseAction.TRAP, False),
    ],
)
def test_a_missing_child_is_created_only_when_the_config_wants_it_up(
    start_action, close_action, created
):
    a, b = make_peers({"start_action": start_action, "child": {"close_action": close_action}}, {})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now, children=[])  # IKE SA alone
    run_until_idle(a, b, clock, until=clock.now + GRACE - 0.1)
    assert sa.state is IkeState.ESTABLISHED and list(sa.children) == []
    run_until_idle(a, b, clock, until=clock.now + 60)
    if created:
        one_pair_each(a, b)
        assert a.manager.counters["missing_child_sas_created"] == 1
    else:
        assert list(sa.children) == [] and not a.manager.counters["missing_child_sas_created"]


def test_a_refused_missing_child_is_retried_only_every_few_seconds():
    a, b = make_peers({"start_action": StartAction.START}, {"esp": "aes128-sha256"})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 150)
    assert sa.state is IkeState.ESTABLISHED and list(sa.children) == []
    assert 10 <= a.manager.counters["missing_child_sas_created"] <= 30  # 5-15 s apart
