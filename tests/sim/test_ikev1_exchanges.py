"""IKEv1 exchanges between two in-memory ikepulse peers when the network or the peer is
unlucky: lost messages, garbled and forged ones, deletes, DPD under loss, a restarted peer
(RFC 2408 §5, RFC 2409 §5, RFC 3706, RFC 2407 §4.6.3.3).

left is the initiator (phase 1 and Quick Mode), right the responder, unless a test says
otherwise. ``x`` marks a message the network loses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from ikepulse.config.build import retransmit_policy
from ikepulse.core.connection import CloseAction
from ikepulse.core.datagram import Datagram
from ikepulse.core.events import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    PeerDead,
    TunnelRestored,
)
from ikepulse.core.ikev1.informational import signed_informational
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import (
    LEFT,
    RIGHT,
    Clock,
    Peer,
    liveness_policy,
    make_peers,
    run_until_idle,
)
from ikepulse.wire.isakmp import FLAG_ENCRYPTED, decode_isakmp, encode_chain, encode_isakmp
from ikepulse.wire.isakmp_enums import VID_DPD, ExchangeV1, NotifyV1, ProtocolV1
from ikepulse.wire.isakmp_payloads import DeleteV1, HashV1Payload, NotifyV1Payload

V1 = {"version": 1, "ike": "aes256-sha256-modp2048", "esp": "aes256-sha256"}
POLICY = retransmit_policy()
GIVE_UP = sum(POLICY.timeout * POLICY.base**k for k in range(POLICY.tries + 1))
"""Seconds from the first transmission until the retransmissions are exhausted."""


def peers(left: dict | None = None, right: dict | None = None) -> tuple[Peer, Peer, Clock]:
    a, b = make_peers({**V1, **(left or {})}, {**V1, **(right or {})})
    return a, b, Clock()


def up(left: dict | None = None, right: dict | None = None, drop=None):
    a, b, clock = peers(left, right)
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, drop=drop, until=clock.now + 0.001)
    return a, b, sa, clock


def exchange_of(datagram: Datagram) -> ExchangeV1 | None:
    return None if datagram.keepalive else decode_isakmp(datagram.data).exchange


def sent(peer: Peer, exchange: ExchangeV1) -> list[bytes]:
    return [d.data for d in peer.sent if exchange_of(d) == exchange]


def live(peer: Peer) -> list:
    return [sa for sa in peer.manager.sas.values() if sa.state is IkeState.ESTABLISHED]


def paired(a: Peer, b: Peer) -> None:
    """One ISAKMP SA each, the same one, with one IPsec SA pair whose SPIs cross."""
    (mine,), (theirs,) = live(a), live(b)
    assert (mine.spi_i, mine.spi_r) == (theirs.spi_i, theirs.spi_r)
    (child,), (peer_child,) = list(mine.children), list(theirs.children)
    assert (child.spi_in, child.spi_out) == (peer_child.spi_out, peer_child.spi_in)


@dataclass
class Lose:
    """Loses the ``nth`` distinct ``exchange`` message ``sender`` sends (once: its
    retransmissions, byte for byte the same, get through)."""

    sender: tuple[str, int]
    exchange: ExchangeV1
    nth: int
    seen: list[bytes] = field(default_factory=list)
    lost: bool = False

    def __call__(self, datagram: Datagram) -> bool:
        if datagram.src[0] != self.sender[0] or exchange_of(datagram) != self.exchange:
            return False
        if datagram.data in self.seen:
            return False
        self.seen.append(datagram.data)
        if len(self.seen) != self.nth:
            return False
        self.lost = True
        return True


def lose(exchange: ExchangeV1, number: int) -> Lose:
    """Message ``number`` (1-based, as RFC 2409 numbers them; the initiator sends the odd
    ones) of an exchange whose initiator is left."""
    return Lose(LEFT if number % 2 else RIGHT, exchange, (number + 1) // 2)


def recovered(a: Peer, b: Peer, exchange: ExchangeV1, lost: Lose, distinct: tuple[int, int]):
    """Established despite the loss; every copy either side sent of ``exchange`` is one
    of ``distinct`` messages (a repeat got the stored answer, never a new one)."""
    assert lost.lost
    paired(a, b)
    mine, theirs = sent(a, exchange), sent(b, exchange)
    assert (len(set(mine)), len(set(theirs))) == distinct
    assert len(mine) + len(theirs) > sum(distinct)  # something was sent again


# --- lost messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_main_mode_recovers_a_lost_message(number):
    """Each message of Main Mode lost once:

    left                                   right
    HDR, SA, VID -->                                   (1)
                                     <-- HDR, SA, VID  (2)
    HDR, KE, Ni, NAT-D -->                             (3)
                               <-- HDR, KE, Nr, NAT-D  (4)
    HDR*, IDii, HASH_I -->                             (5)
                                  <-- HDR*, IDir, HASH_R (6)

    lost 1, 3, 5: left resends on its timer. lost 2, 4, 6: left's resend is a repeat
    for right, which sends its stored answer again (for 6: it keeps MM6 for that).
    """
    loss = lose(ExchangeV1.MAIN, number)
    a, b, sa, clock = up(drop=loss)
    run_until_idle(a, b, clock, drop=loss, until=clock.now + GIVE_UP)
    recovered(a, b, ExchangeV1.MAIN, loss, (3, 3))
    if number == 6:
        assert b.manager.counters["retransmits_answered"] >= 1
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1


@pytest.mark.parametrize("number", [1, 2, 3])
def test_aggressive_mode_recovers_a_lost_message(number):
    """Each message of Aggressive Mode lost once:

    left                                              right
    HDR, SA, KE, Ni, IDii, VID -->                                (1)
                    <-- HDR, SA, KE, Nr, IDir, HASH_R, VID, NAT-D (2)
    HDR, HASH_I, NAT-D -->                                        (3)

    lost 3: right resends AM2 on its timer; left answers the repeat with its stored AM3.
    """
    loss = lose(ExchangeV1.AGGRESSIVE, number)
    aggressive = {"aggressive": True}
    a, b, sa, clock = up(aggressive, aggressive, drop=loss)
    run_until_idle(a, b, clock, drop=loss, until=clock.now + GIVE_UP)
    recovered(a, b, ExchangeV1.AGGRESSIVE, loss, (2, 1))
    if number == 3:
        assert a.manager.counters["retransmits_answered"] >= 1


@pytest.mark.parametrize("number", [1, 2, 3])
def test_quick_mode_recovers_a_lost_message(number):
    """Each message of Quick Mode lost once:

    left                                      right
    HDR*, HASH(1), SA, Ni, IDci, IDcr -->             (1)
                 <-- HDR*, HASH(2), SA, Nr, IDci, IDcr (2)   left installs
    HDR*, HASH(3) -->                                 (3)   right installs

    lost 3: right resends QM2 on its timer; left, done already, answers it with its
    stored QM3 (not a new Quick Mode).
    """
    loss = lose(ExchangeV1.QUICK, number)
    a, b, sa, clock = up(drop=loss)
    run_until_idle(a, b, clock, drop=loss, until=clock.now + GIVE_UP)
    recovered(a, b, ExchangeV1.QUICK, loss, (2, 1))
    assert len(a.of(ChildSaInstalled)) == len(b.of(ChildSaInstalled)) == 1
    if number == 3:
        assert a.manager.counters["retransmits_answered"] >= 1


def test_main_mode_without_answers_fails_once_the_retransmissions_are_spent():
    """left                                   right
    HDR, SA, VID -->   (answers all lost)  x
    ... resent timeout * base**k later, ``tries`` times ...
    IkeSaFailed: "no answer after N retransmits"
    """
    a, b, sa, clock = up(drop=lambda d: d.src == RIGHT)
    start = clock.now
    run_until_idle(a, b, clock, drop=lambda d: d.src == RIGHT, until=clock.now + 2 * GIVE_UP)
    assert sa.state is IkeState.FAILED
    (failed,) = a.of(IkeSaFailed)
    assert f"no answer after {POLICY.tries} retransmits" in failed.reason
    assert len(sent(a, ExchangeV1.MAIN)) == POLICY.tries + 1
    assert clock.now - start <= GIVE_UP + 1e-6


def test_quick_mode_without_answers_fails_and_the_isakmp_sa_stays():
    """left                                      right
    (Main Mode done)
    HDR*, HASH(1), SA, Ni, IDci, IDcr -->
                                          x <-- HDR*, HASH(2), ...   (every QM2 lost)
    ... QM1 resent, ``tries`` times ...
    ChildSaFailed "Quick Mode: no answer"; a DPD check follows and is answered
    """

    def drop(d: Datagram) -> bool:
        return d.src == RIGHT and exchange_of(d) == ExchangeV1.QUICK

    a, b, sa, clock = up(drop=drop)
    run_until_idle(a, b, clock, drop=drop, until=clock.now + 2 * GIVE_UP)
    (failed,) = a.of(ChildSaFailed)
    assert "Quick Mode: no answer" in failed.reason
    assert sa.state is IkeState.ESTABLISHED and not a.of(PeerDead)
    assert b.manager.counters["dpd_requests_answered"] >= 1


# --- forged and garbled input ----------------------------------------------------------------


def garbled(data: bytes) -> bytes:
    """The first and the last ciphertext block changed (HASH fails; a different last
    block would be a different next IV)."""
    body = bytearray(data)
    body[28] ^= 0x40
    body[-1] ^= 0x01
    return bytes(body)


def test_garbled_quick_mode_messages_do_not_move_the_iv_chain():
    """Each Quick Mode message arrives garbled first, then as sent:

    left                                      right
    HDR*, HASH(1)~ ... -->                            dropped, counted
    HDR*, HASH(1), SA, Ni, IDci, IDcr -->             decrypts: the IV did not move
              <-- HDR*, HASH(2)~ ...                  dropped, counted
              <-- HDR*, HASH(2), SA, Nr, IDci, IDcr   decrypts
    HDR*, HASH(3)~ -->                                dropped, counted
    HDR*, HASH(3) -->                                 decrypts: right installs
    """
    a, b, sa, clock = up()
    installed = len(a.of(ChildSaInstalled)), len(b.of(ChildSaInstalled))
    a.manager.renew("site", clock.now)
    sender, receiver = a, b
    for _ in range(3):
        (message,) = sender.manager.datagrams_to_send(clock.now)
        src, dst = message.src, message.dst
        dropped = sum(v for k, v in receiver.manager.counters.items() if k.startswith("dropped"))
        receiver.manager.receive_datagram(garbled(message.data), src, dst, clock.now)
        after = sum(v for k, v in receiver.manager.counters.items() if k.startswith("dropped"))
        assert after == dropped + 1
        assert receiver.manager.datagrams_to_send(clock.now) == []
        receiver.manager.receive_datagram(message.data, src, dst, clock.now)
        sender, receiver = receiver, sender
    assert len(a.of(ChildSaInstalled)) == installed[0] + 1
    assert len(b.of(ChildSaInstalled)) == installed[1] + 1
    assert not a.of(ChildSaFailed) and not b.of(ChildSaFailed)


def informational(sa, payloads: list, *, good_hash: bool, message_id: int = 0x5EED) -> bytes:
    """An Informational protected with ``sa``'s keys, its HASH(1) right or one bit off."""
    keying = sa.keying
    signed = signed_informational(keying, message_id, payloads)
    if not good_hash:
        digest = signed[0].data
        signed[0] = HashV1Payload(bytes([digest[0] ^ 1]) + digest[1:])
    first, plain = encode_chain(signed)
    body = keying.seal(message_id, plain)
    keying.forget(message_id)
    return encode_isakmp(sa.spi_i, sa.spi_r, ExchangeV1.INFORMATIONAL, FLAG_ENCRYPTED,
                         message_id, encrypted=(first, body))  # fmt: skip


def test_informational_with_a_bad_hash_is_dropped_and_its_deletes_ignored():
    """left                                   right
    HDR*, HASH(1)~, D(ESP), D(ISAKMP) -->          dropped (bad_hash): nothing deleted
    HDR*, HASH(1), D(ESP) -->                      the IPsec SA is deleted
    """
    a, b, sa, clock = up()
    (child,) = list(sa.children)
    deletes = [DeleteV1(ProtocolV1.ESP, (child.spi_in,)),
               DeleteV1(ProtocolV1.ISAKMP, (sa.spi_i + sa.spi_r,))]  # fmt: skip
    b.manager.receive_datagram(informational(sa, deletes, good_hash=False), LEFT, RIGHT, 1e3)
    assert b.manager.counters["dropped_bad_hash"] == 1
    assert not b.of(ChildSaDeleted) and not b.of(IkeSaDeleted)
    paired(a, b)
    b.manager.receive_datagram(informational(sa, deletes[:1], good_hash=True), LEFT, RIGHT, 1e3)
    (deleted,) = b.of(ChildSaDeleted)
    assert deleted.by_peer and deleted.spi_out == child.spi_in


# --- deletes ---------------------------------------------------------------------------------


def test_peer_deletes_the_ipsec_sa_and_close_action_start_brings_it_back():
    """left                                   right (close_action = start)
    HDR*, HASH(1), D(ESP, left's inbound SPI) -->
                                        ChildSaDeleted(by_peer)
             <-- HDR*, HASH(1), SA, Ni, IDci, IDcr      (right starts a Quick Mode)
    HDR*, HASH(2), ... -->
             <-- HDR*, HASH(3)
    """
    a, b, sa, clock = up(None, {"child": {"close_action": CloseAction.START}})
    (entry,) = sa.children.entries()
    sa.children.delete(entry, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    (deleted,) = b.of(ChildSaDeleted)
    assert deleted.by_peer and deleted.spi_out == entry.spi_in
    assert b.manager.counters["close_action_children_created"] == 1
    assert len(b.of(ChildSaInstalled)) == 2
    paired(a, b)


def test_peer_deletes_the_isakmp_sa_and_close_action_start_sets_it_up_again():
    """left                                   right (close_action = start)
    HDR*, HASH(1), D(ESP) -->
    HDR*, HASH(1), D(ISAKMP, CKY-I | CKY-R) -->
                                        IkeSaDeleted(by_peer), TunnelRestored
             <-- HDR, SA, VID ...                        (right initiates Main Mode)
    """
    right = {"child": {"close_action": CloseAction.START}, "remote_addrs": (LEFT[0],)}
    a, b, sa, clock = up(None, right)
    a.manager.delete("site", clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert sa.state is IkeState.DELETED
    gone = [e for e in b.of(IkeSaDeleted) if e.spi_i == sa.spi_i]
    assert [e.by_peer for e in gone] == [True]
    assert len(b.of(TunnelRestored)) == 1
    (new,) = live(b)
    assert new.initiator and new.version == 1
    paired(a, b)


# --- DPD -------------------------------------------------------------------------------------


def strip_dpd_vid(target: Peer, clock: Clock):
    """A filter that delivers phase 1 messages to ``target`` with the DPD vendor ID
    replaced (as from a peer that never announced RFC 3706)."""

    def drop(datagram: Datagram) -> bool:
        if datagram.keepalive or VID_DPD not in datagram.data:
            return False
        other = datagram.data.replace(VID_DPD, bytes(16))
        target.manager.receive_datagram(other, datagram.src, datagram.dst, clock.now)
        return True

    return drop


def test_r_u_there_is_answered_even_without_the_dpd_vendor_id():
    """Neither side saw the other's DPD vendor ID, so neither asks; left asks anyway:

    left                                         right
    HDR*, HASH(1), N(R-U-THERE, seq) -->
                          <-- HDR*, HASH(1), N(R-U-THERE-ACK, seq)
    """
    dpd = {"liveness": liveness_policy(dpd_delay=5, dpd_timeout=10, nat_keepalive=0)}
    a, b, clock = peers(dpd, dpd)
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    to_b = strip_dpd_vid(b, clock)
    to_a = strip_dpd_vid(a, clock)
    run_until_idle(a, b, clock, drop=lambda d: (to_b if d.src == LEFT else to_a)(d),
                   until=clock.now + 30)  # fmt: skip
    assert sa.state is IkeState.ESTABLISHED
    assert not a.manager.counters["dpd_requests_answered"]  # nobody asked by itself
    assert not b.manager.counters["dpd_requests_answered"]
    ask = NotifyV1Payload(NotifyV1.R_U_THERE, ProtocolV1.ISAKMP, sa.spi_i + sa.spi_r,
                          (4711).to_bytes(4, "big"))  # fmt: skip
    b.manager.receive_datagram(informational(sa, [ask], good_hash=True), LEFT, RIGHT, clock.now)
    assert b.manager.counters["dpd_requests_answered"] == 1
    (answer,) = b.manager.datagrams_to_send(clock.now)
    a.manager.receive_datagram(answer.data, RIGHT, LEFT, clock.now)
    assert a.manager.counters["dpd_acks_unexpected"] == 1  # the ACK carries 4711 back


def test_dpd_under_twenty_percent_loss_declares_no_live_peer_dead():
    """Both sides probe when idle; each datagram is lost with p = 0.2, for four hours:

    left                                   right
    HDR*, HASH(1), N(R-U-THERE, n) -->  x
    HDR*, HASH(1), N(R-U-THERE, n+1) -->        (resent inside the DPD budget)
                     <-- HDR*, HASH(1), N(R-U-THERE-ACK, n+1)
    """
    policy = liveness_policy(dpd_delay=30, dpd_timeout=120, nat_keepalive=0)
    a, b, sa, clock = up({"liveness": policy}, {"liveness": policy})
    rng = random.Random(20)
    lossy = lambda d: rng.random() < 0.2  # noqa: E731
    run_until_idle(a, b, clock, drop=lossy, until=clock.now + 4 * 3600, max_steps=200_000)
    assert not a.of(PeerDead) and not b.of(PeerDead)
    assert sa.state is IkeState.ESTABLISHED and live(b)[0].spi_i == sa.spi_i
    asked = (
        a.manager.counters["dpd_requests_answered"] + b.manager.counters["dpd_requests_answered"]
    )
    assert asked > 4 * 3600 / 30 / 2
    assert a.manager.counters["retransmits_sent"] + b.manager.counters["retransmits_sent"] > 10


# --- a restarted peer ------------------------------------------------------------------------


def test_initial_contact_in_mm5_replaces_the_sas_of_a_restarted_peer():
    """left restarts (no state) and sets up phase 1 again:

    left (restarted)                        right (holds the old ISAKMP + IPsec SAs)
    HDR, SA, VID -->  ...  <-- HDR, KE, Nr, NAT-D
    HDR*, IDii, HASH_I, N(INITIAL-CONTACT) -->
                                            old ISAKMP SA and its IPsec SAs removed
                             <-- HDR*, IDir, HASH_R
    Quick Mode ...                          one ISAKMP SA, one IPsec SA pair
    """
    a, b, old, clock = up()
    (old_child,) = list(live(b)[0].children)
    restarted = Peer(SaManager(a.manager.connections, random.Random(99)), LEFT)
    new = restarted.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(restarted, b, clock, until=clock.now + 1)
    assert new.state is IkeState.ESTABLISHED
    assert [e.spi_i for e in b.of(IkeSaDeleted)] == [old.spi_i]
    assert old_child.spi_in in [e.spi_in for e in b.of(ChildSaDeleted)]
    assert b.manager.counters["ipsec_sas_adopted"] == 0
    paired(restarted, b)
