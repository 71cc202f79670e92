"""Exchange collisions around rekeying (RFC 7296 §2.8.1, §2.8.2, §2.25), in memory.

Each test draws its exchanges; "left" is the original IKE SA initiator. Which new SA survives a
simultaneous rekey depends on the nonces, so those tests run over several seeds and check that
both outcomes occur.
"""

from __future__ import annotations

import random

import pytest

from ikepulse.core.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    IkeSaDeleted,
    IkeSaRekeyed,
)
from ikepulse.core.peer_liveness import Liveness
from ikepulse.core.renewal import LINGER
from ikepulse.core.state import IkeState
from ikepulse.core.tasks.key_exchange import NONCE_SIZE
from ikepulse.esp.plane import EspPlane
from ikepulse.esp.transport_mode import build_ip_packet
from ikepulse.runtime.dataplane import sa_pair
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle, transfer
from ikepulse.wire.enums import DhId, NotifyType


def established(seed: int = 1, left: dict | None = None, right: dict | None = None):
    a, b = make_peers(left, right, seed=seed)
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (peer,) = b.manager.sas.values()
    return a, b, sa, peer, clock


def live(peer) -> list:
    return [s for s in peer.manager.sas.values() if s.state is IkeState.ESTABLISHED]


def one_pair_each(a, b):
    """Exactly one IKE SA per side, the same one, with one matching CHILD SA pair."""
    assert len(a.manager.sas) == 1 and len(b.manager.sas) == 1
    (sa,), (peer,) = live(a), live(b)
    assert (sa.spi_i, sa.spi_r) == (peer.spi_i, peer.spi_r) and sa.sk.keys == peer.sk.keys
    (mine,), (theirs,) = sa.children, peer.children
    assert mine.spi_in == theirs.spi_out and mine.spi_out == theirs.spi_in
    assert mine.keys == theirs.keys
    return sa, peer


def test_simultaneous_child_rekeys_leave_one_pair_whichever_nonce_is_lowest():
    #   left                                              right
    #   CREATE_CHILD_SA {N(REKEY_SA), SA, Ni1, ..} -->    <-- CREATE_CHILD_SA {.., Ni2, ..}
    #   <-- {SA, Nr2, ..}                                      {SA, Nr1, ..} -->
    #   the SA made with the lowest of Ni1, Nr1, Ni2, Nr2 is deleted by its creator; the
    #   creator of the surviving SA deletes the old one (§2.8.1):
    #   D(redundant new SA) -->                           <-- D(old SA)   (or the mirror)
    winners = set()
    for seed in range(16):
        a, b, sa, peer, clock = established(seed)
        (old,), (old_peer,) = sa.children, peer.children
        sa.children.rekey(old, clock.now)
        peer.children.rekey(old_peer, clock.now)  # both requests are out before any answer
        run_until_idle(a, b, clock, until=clock.now + 1)
        sa, peer = one_pair_each(a, b)
        (survivor,) = sa.children
        assert survivor.spi_in != old.spi_in
        ours = [e.spi_in for e in a.of(ChildSaInstalled)[1:] if e.initiator]
        winners.add("left" if survivor.spi_in in ours else "right")
        assert len(a.of(ChildSaInstalled)) == 3 and len(b.of(ChildSaInstalled)) == 3
        assert len(a.of(ChildSaDeleted)) == 2 and len(b.of(ChildSaDeleted)) == 2
        assert a.of(ChildSaFailed) == [] and b.of(ChildSaFailed) == []
        assert a.manager.counters["child_rekey_collisions"] == 1
        assert b.manager.counters["child_rekey_collisions"] == 1
    assert winners == {"left", "right"}


def _ike_spis(peer) -> set[tuple[bytes, bytes]]:
    return {(e.spi_i, e.spi_r) for e in peer.of(IkeSaRekeyed)}


def test_simultaneous_ike_rekeys_leave_one_ike_sa_whichever_nonce_is_lowest():
    #   left (old IKE SA)                                 right (old IKE SA)
    #   CREATE_CHILD_SA {SA(SPI1), Ni1, KEi1} -->         <-- CREATE_CHILD_SA {SA(SPI2), Ni2, ..}
    #   <-- {SA(SPI2'), Nr2, KEr2}                             {SA(SPI1'), Nr1, KEr1} -->
    #   both wait for their own answer before moving CHILD SAs (§2.8.2); then, if the lowest
    #   nonce is Ni1 or Nr1 (the mirror otherwise):
    #   left: D(IKE) over new SA 1 -->                    <-- right: D(IKE) over the old SA
    #   and the CHILD SAs live on new SA 2 on both sides.
    winners = set()
    for seed in range(16):
        a, b, sa, peer, clock = established(seed)
        (child,) = sa.children
        sa.rekey(clock.now)
        peer.rekey(clock.now)
        run_until_idle(a, b, clock, until=clock.now + 1)
        new, new_peer = one_pair_each(a, b)
        assert list(new.children) == [child] and new.spi_i not in (sa.spi_i, sa.spi_r)
        winners.add("left" if new.initiator else "right")
        # one rekey event per side, naming the survivor; the old and the redundant SA deleted
        assert _ike_spis(a) == _ike_spis(b) == {(new.spi_i, new.spi_r)}
        assert len(a.of(IkeSaDeleted)) == 2 and len(b.of(IkeSaDeleted)) == 2
        assert a.of(ChildSaDeleted) == [] and b.of(ChildSaDeleted) == []
        assert a.manager.counters["ike_rekey_collisions"] == 1
        assert b.manager.counters["ike_rekey_collisions"] == 1
        new.children.rekey(child, clock.now)  # the survivor carries on
        run_until_idle(a, b, clock, until=clock.now + 1)
        one_pair_each(a, b)
    assert winners == {"left", "right"}


def test_simultaneous_ike_rekeys_when_an_answer_overtakes_the_request():
    #   left                                   right
    #   {SA(SPI1), Ni1, ..} -->
    #                                     <-- {SA(SPI2), Ni2, ..}   (sent before req 1 arrived)
    #                                     <-- {SA(SPI1'), Nr1, ..}  (overtakes req 2)
    #   left's rekey completes first: it moves the CHILD SAs to SPI1 and deletes the old SA;
    #   req 2 then finds the old SA closing: TEMPORARY_FAILURE (§2.25.2). Right learns it
    #   lost when the old SA is deleted (or from that answer) and keeps SPI1.
    a, b, sa, peer, clock = established()
    sa.rekey(clock.now)
    peer.rekey(clock.now)
    transfer(a, b, clock)  # req 1 to right; right's outbox holds req 2, then resp 1
    for datagram in reversed(b.manager.datagrams_to_send(clock.now)):
        a.manager.receive_datagram(datagram.data, datagram.src, datagram.dst, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    new, _ = one_pair_each(a, b)
    assert new.initiator  # left's SA1


def test_ike_rekey_and_child_rekey_at_once_are_retried_after_temporary_failure():
    #   left                                         right
    #   CREATE_CHILD_SA {SA(IKE), Ni, KEi} -->       <-- CREATE_CHILD_SA {N(REKEY_SA), SA, ..}
    #   <-- N(TEMPORARY_FAILURE)                          N(TEMPORARY_FAILURE) -->
    #   (§2.25.2: no IKE rekey while a CHILD SA exchange is in flight, and no CHILD SA rekey
    #   while the IKE SA is being rekeyed); each retries 5-15 s later and both complete.
    a, b, sa, peer, clock = established()
    sa.rekey(clock.now)
    peer.children.rekey(peer.children[0], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.5)
    assert a.manager.counters["ike_rekeys_failed"] == 1
    assert [e.notify for e in b.of(ChildSaFailed)] == [NotifyType.TEMPORARY_FAILURE]
    run_until_idle(a, b, clock, until=clock.now + 20)
    one_pair_each(a, b)
    assert len(a.of(IkeSaRekeyed)) == 1
    assert len([e for e in b.of(ChildSaInstalled) if e.replaces]) == 1


def test_rekey_of_a_child_the_peer_is_deleting():
    #   left                                         right
    #   CREATE_CHILD_SA {N(REKEY_SA, old), ..} -->   <-- INFORMATIONAL {D(ESP, old)}
    #   {D(ESP, old)} -->                            <-- N(TEMPORARY_FAILURE)   (§2.25.1)
    #   the CHILD SA is gone on both sides and is not rekeyed later
    a, b, sa, peer, clock = established()
    sa.children.rekey(sa.children[0], clock.now)
    peer.children.delete(peer.children.entries()[0], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 60)
    assert list(sa.children) == [] and list(peer.children) == []
    assert [e.notify for e in a.of(ChildSaFailed)] == [NotifyType.TEMPORARY_FAILURE]
    assert len(a.of(ChildSaInstalled)) == 1 and len(sa.children) == 0


def test_peer_deletes_the_old_child_while_our_rekey_completes():
    #   left                                         right
    #   CREATE_CHILD_SA {N(REKEY_SA, old), ..} -->
    #                                                <-- INFORMATIONAL {D(ESP, old)}  (sent
    #                                                    before right saw the rekey)
    #                                                <-- {SA, Nr, ..} (right had no reason
    #                                                    to refuse: it had finished the delete)
    #   the peer wanted the pair gone, so left deletes the new SA too: nothing is left over
    a, b, sa, peer, clock = established()
    (old,), (old_peer,) = sa.children, peer.children
    peer.children.delete(peer.children.entry(old_peer), clock.now)
    transfer(b, a, clock)  # the delete reaches left first
    sa.children.rekey(old, clock.now)  # too late to see it: the rekey was queued before
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert list(sa.children) == [] and list(peer.children) == []


def test_rekey_answered_child_sa_not_found_creates_a_new_child():
    #   left                                         right (lost the CHILD SA)
    #   CREATE_CHILD_SA {N(REKEY_SA, old), ..} -->
    #                                <-- N(CHILD_SA_NOT_FOUND)
    #   CREATE_CHILD_SA {SA, Ni, TSi, TSr} -->       (§2.25: a new one from scratch)
    #                                <-- {SA, Nr, TSi, TSr}
    a, b, sa, peer, clock = established()
    (child,) = sa.children
    peer.children.remove(peer.children.entries()[0], by_peer=False)
    sa.children.rekey(child, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    (failed,) = a.of(ChildSaFailed)
    assert failed.notify == NotifyType.CHILD_SA_NOT_FOUND
    sa, peer = one_pair_each(a, b)
    assert sa.children[0].spi_in != child.spi_in


def test_peer_rekeys_while_our_liveness_check_is_in_flight():
    #   left                                         right
    #   INFORMATIONAL {} -->  (liveness check)       <-- CREATE_CHILD_SA {N(REKEY_SA), ..}
    #   {SA, Nr, ..} -->                             <-- INFORMATIONAL {}
    #   left's IKE rekey, asked for meanwhile, waits for the check to finish; it then meets
    #   right's delete of the old CHILD SA, gets TEMPORARY_FAILURE and succeeds on a retry.
    a, b, sa, peer, clock = established()
    sa.check_liveness(clock.now)
    peer.children.rekey(peer.children[0], clock.now)
    sa.rekey(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 20)
    new, _ = one_pair_each(a, b)
    assert new.liveness.state is Liveness.ALIVE and new is not sa
    assert len([e for e in a.of(ChildSaInstalled) if e.replaces]) == 1


def test_invalid_ke_in_create_child_sa_retries_with_the_group_asked_for():
    #   left (PFS: x25519 first, modp2048 too)       right (PFS: modp2048 only)
    #   CREATE_CHILD_SA {N(REKEY_SA), SA, Ni, KE(x25519), ..} -->
    #                                <-- N(INVALID_KE_PAYLOAD, modp2048)
    #   CREATE_CHILD_SA {N(REKEY_SA), SA, Ni', KE(modp2048), ..} -->
    #                                <-- {SA, Nr, KE(modp2048), ..}
    a, b, sa, peer, clock = established(
        left={"esp": "aes256gcm16-x25519-modp2048"}, right={"esp": "aes256gcm16-modp2048"}
    )
    sa.children.rekey(sa.children[0], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    sa, peer = one_pair_each(a, b)
    assert sa.children[0].suite.dh == DhId.MODP_2048
    assert a.of(ChildSaFailed) == []


def test_invalid_ke_in_an_ike_rekey_retries_with_the_group_asked_for():
    #   the right now wants ecp256 (its configuration changed since the IKE SA was set up):
    #   CREATE_CHILD_SA {SA(IKE), Ni, KE(x25519)} -->   <-- N(INVALID_KE_PAYLOAD, ecp256)
    #   CREATE_CHILD_SA {SA(IKE), Ni', KE(ecp256)} -->  <-- {SA, Nr, KE(ecp256)}
    from dataclasses import replace

    from ikepulse.config.proposals import parse_ike_proposal

    a, b, sa, peer, clock = established(left={"ike": "aes256gcm16-prfsha256-x25519-ecp256"})
    peer.connection = replace(
        peer.connection, proposals=(parse_ike_proposal("aes256gcm16-prfsha256-ecp256"),)
    )
    sa.rekey(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    new, _ = one_pair_each(a, b)
    assert new.sk.suite.dh == DhId.ECP_256 and a.manager.counters["ike_rekeys_failed"] == 0


def _outbound_trace(events) -> list[bytes | None]:
    """Feed a peer's events to an ESP plane; after each install or delete, the inbound SPI
    of the SA that carries a packet between the sites (None: it is dropped)."""
    first = next(e for e in events if isinstance(e, ChildSaInstalled))
    src, dst = first.local_ts[0].start, first.remote_ts[0].start
    packet = build_ip_packet(str(src), str(dst), 17, bytes(12))
    plane = EspPlane(random.Random(0))
    trace = []
    for event in events:
        if isinstance(event, ChildSaInstalled):
            plane.install(sa_pair(event), 0.0)
        elif isinstance(event, ChildSaDeleted):
            plane.delete(event.spi_in, 0.0)
        else:
            continue
        sealed = plane.outbound(packet, 0.0)
        trace.append(None if sealed is None else sealed[0].inbound.spi)
    return trace


def test_data_plane_never_sends_on_a_redundant_sa_of_simultaneous_rekeys():
    # Whichever side's rekey survives, traffic goes from the old SA straight to the
    # survivor: neither the redundant SA we created nor the one we answered ever carries it
    # (the peer deletes its redundant SA, or closes ours, as soon as it knows).
    for seed in range(16):
        a, b, sa, peer, clock = established(seed)
        sa.children.rekey(sa.children[0], clock.now)
        peer.children.rekey(peer.children[0], clock.now)
        run_until_idle(a, b, clock, until=clock.now + 1)
        for side, events in ((sa, a.events), (peer, b.events)):
            installed = [e.spi_in for e in events if isinstance(e, ChildSaInstalled)]
            (survivor,) = side.children
            trace = _outbound_trace(events)
            assert trace[-1] == survivor.spi_in
            assert set(trace) == {installed[0], survivor.spi_in}, seed


def test_a_deleted_ike_sa_still_answers_a_retransmitted_request():
    #   left                                        right
    #                                               <-- INFORMATIONAL request (liveness)
    #   answer --X (lost)
    #   INFORMATIONAL {D(IKE)} -->                  <-- {}     (left deletes the IKE SA)
    #                                               <-- INFORMATIONAL request (retransmitted)
    #   the cached answer -->
    # This is how a peer whose IKE SA rekey collided learns its outcome when we delete the
    # old IKE SA before its retransmission arrives (seen with strongSwan).
    a, b, sa, peer, clock = established()
    peer.check_liveness(clock.now)
    (request,) = b.manager.datagrams_to_send(clock.now)
    a.manager.receive_datagram(request.data, request.src, request.dst, clock.now)
    (answer,) = a.manager.datagrams_to_send(clock.now)  # lost
    sa.delete(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert a.manager.sas == {}
    a.manager.receive_datagram(request.data, request.src, request.dst, clock.now)
    assert [d.data for d in a.manager.datagrams_to_send(clock.now)] == [answer.data]


class ChosenNonces(random.Random):
    """The RNG of one peer, except that the next nonces drawn are the ones chosen."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.chosen: list[bytes] = []

    def randbytes(self, n: int) -> bytes:
        if n == NONCE_SIZE and self.chosen:
            return self.chosen.pop(0)
        return super().randbytes(n)


LOW, HIGH = bytes(NONCE_SIZE), b"\xff" * NONCE_SIZE


def _collide_with_chosen_nonces(lowest: str, start) -> tuple:
    """Both peers start a rekey (``start(sa)``); ``lowest`` names the one nonce of the four
    that is lowest: "Ni1"/"Nr1" of left's exchange or "Ni2"/"Nr2" of right's."""
    a, b, sa, peer, clock = established()
    sa.rng, peer.rng = ChosenNonces(1), ChosenNonces(2)
    pick = {name: (LOW if name == lowest else HIGH) for name in ("Ni1", "Nr1", "Ni2", "Nr2")}
    sa.rng.chosen, peer.rng.chosen = [pick["Ni1"]], [pick["Ni2"]]
    start(sa)
    start(peer)
    peer.rng.chosen, sa.rng.chosen = [pick["Nr1"]], [pick["Nr2"]]
    transfer(a, b, clock)  # right answers left's request (Nr1) ...
    transfer(b, a, clock)  # ... and left right's (Nr2)
    run_until_idle(a, b, clock, until=clock.now + 1)
    return a, b, sa, peer


@pytest.mark.parametrize("lowest", ["Ni1", "Nr1", "Ni2", "Nr2"])
def test_child_rekey_collision_with_chosen_nonces(lowest):
    #   left                                       right
    #   {N(REKEY_SA), SA, Ni1, ..} -->             <-- {N(REKEY_SA), SA, Ni2, ..}
    #   {SA, Nr2, ..} -->                          <-- {SA, Nr1, ..}
    #   lowest in left's exchange (Ni1 or Nr1): left deletes its new SA, right the old one;
    #   lowest in right's exchange: the mirror image.
    a, b, sa, peer = _collide_with_chosen_nonces(
        lowest, lambda s: s.children.rekey(s.children[0], 0)
    )
    one_pair_each(a, b)
    (survivor,) = sa.children
    made_by_left = {e.spi_in for e in a.of(ChildSaInstalled)[1:] if e.initiator}
    assert (survivor.spi_in in made_by_left) == (lowest in ("Ni2", "Nr2"))


@pytest.mark.parametrize("lowest", ["Ni1", "Nr1", "Ni2", "Nr2"])
def test_ike_rekey_collision_with_chosen_nonces(lowest):
    #   left                                       right
    #   {SA(SPI1), Ni1, KEi} -->                   <-- {SA(SPI2), Ni2, KEi}
    #   {SA(SPI2'), Nr2, KEr} -->                  <-- {SA(SPI1'), Nr1, KEr}
    #   lowest in left's exchange: left deletes new IKE SA 1, right deletes the old one and
    #   the CHILD SAs live on IKE SA 2 (left is its responder); the mirror image otherwise.
    a, b, sa, peer = _collide_with_chosen_nonces(lowest, lambda s: s.rekey(0))
    new, _ = one_pair_each(a, b)
    assert new.initiator == (lowest in ("Ni2", "Nr2"))
    assert new.children and a.manager.counters["ike_rekey_collisions"] == 1


def test_redundant_ike_sa_the_peer_never_completed_is_forgotten_after_linger():
    #   left                                        right
    #   {SA(SPI1), Ni1, ..} --X (lost)
    #                                               <-- {SA(SPI2), Ni2, ..}
    #   {SA(SPI2'), Nr2, ..} --X (lost)
    #   {SA(SPI1), Ni1, ..} --> (retransmitted)     <-- {SA(SPI1'), Nr1, ..}
    #   Ni2 is the lowest nonce, so SPI1 survives: D(old IKE SA) -->
    #   right abandons its rekey and never learns of SPI2', which nobody will delete: left
    #   forgets it after LINGER, as strongSwan does (seen in the lab with strongSwan as right).
    a, b, sa, peer, clock = established()
    sa.rng, peer.rng = ChosenNonces(1), ChosenNonces(2)
    sa.rng.chosen, peer.rng.chosen = [HIGH, HIGH], [LOW, HIGH]  # Ni1, Nr2 / Ni2, Nr1
    sa.rekey(clock.now)
    transfer(a, b, clock, drop=lambda d: True)
    clock.now += 0.5  # right's retransmission comes after left's
    peer.rekey(clock.now)
    transfer(b, a, clock)
    transfer(a, b, clock, drop=lambda d: True)
    run_until_idle(a, b, clock, until=clock.now + 20)
    assert a.manager.counters["ike_rekey_collisions"] == 1
    (new,) = live(a)
    assert new.initiator and new.children and len(a.manager.sas) == 2  # SPI2' still waits
    run_until_idle(a, b, clock, until=clock.now + LINGER)
    assert one_pair_each(a, b)[0] is new
    assert a.of(ChildSaDeleted) == [] and b.of(ChildSaDeleted) == []


def test_the_peer_deletes_the_old_child_sa_before_answering_our_colliding_rekey():
    #   left                                         right
    #   {N(REKEY_SA), SA, Ni1=LOW, ..} -->           <-- {N(REKEY_SA), SA, Ni2, ..}
    #   {SA, Nr2, ..} -->                            (right's rekey wins: left's exchange
    #                                                 holds the lowest nonce)
    #                              <-- {D(ESP, old)}  (overtakes right's answer to left)
    #                              <-- {SA, Nr1, ..}
    #   left's new SA is the redundant one: installed receive-only, deleted; no duplicate
    a, b, sa, peer, clock = established()
    sa.rng, peer.rng = ChosenNonces(1), ChosenNonces(2)
    sa.rng.chosen, peer.rng.chosen = [LOW], [HIGH]
    sa.children.rekey(sa.children[0], clock.now)
    peer.children.rekey(peer.children[0], clock.now)
    peer.rng.chosen, sa.rng.chosen = [HIGH], [HIGH]
    transfer(a, b, clock)  # left's request reaches right, which answers it (held below)
    rights_request, answer_to_left = b.manager.datagrams_to_send(clock.now)
    a.manager.receive_datagram(rights_request.data, RIGHT, LEFT, clock.now)
    transfer(a, b, clock)  # left's answer: right's rekey completes, right deletes the old SA
    transfer(b, a, clock)  # the delete reaches left first ...
    a.manager.receive_datagram(answer_to_left.data, RIGHT, LEFT, clock.now)  # ... then this
    run_until_idle(a, b, clock, until=clock.now + 1)
    one_pair_each(a, b)
    (ours,) = [e for e in a.of(ChildSaInstalled)[1:] if e.initiator]
    assert ours.defer_outbound and ours.spi_in not in {c.spi_in for c in sa.children}
    assert a.manager.counters["child_rekey_collisions"] == 1
