"""CHILD SA rekeying with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.8, §2.17).

left (rekey initiator)                      right
HDR, SK {N(REKEY_SA, old spi), SA, Ni, [KEi], TSi, TSr} -->
                  <-- HDR, SK {SA, Nr, [KEr], TSi, TSr}
HDR, SK {D(ESP, old spi)} -->
                  <-- HDR, SK {D(ESP, old peer spi)}
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ikepulse.config.proposals import parse_ike_proposal
from ikepulse.core.events import ChildSaDeleted, ChildSaFailed, ChildSaInstalled, ChildSaRekeyed
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, make_peers, run_until_idle
from ikepulse.wire.enums import ExchangeType
from ikepulse.wire.message import decode_message


def established(esp="aes256gcm16", rekey_time=0.0, right_rekey_time=None):
    a, b = make_peers(
        {"esp": esp, "rekey_time": rekey_time},
        {"esp": esp, "rekey_time": rekey_time if right_rekey_time is None else right_rekey_time},
    )
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    assert sa.state is IkeState.ESTABLISHED
    (peer,) = b.manager.sas.values()
    return a, b, sa, peer, clock


def requests_sent(peer, exchange: ExchangeType) -> int:
    return sum(
        1
        for d in peer.sent
        if (m := decode_message(d.data)).exchange == exchange and not m.is_response
    )


def pairs_match(sa, peer) -> None:
    (mine,), (theirs,) = sa.children, peer.children
    assert mine.spi_in == theirs.spi_out and mine.spi_out == theirs.spi_in
    assert mine.keys == theirs.keys


@pytest.mark.parametrize(
    "esp", ["aes256gcm16", "aes128-sha256", "aes256gcm16-x25519", "aes128-sha256-modp2048"]
)
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_rekey_replaces_the_child_on_both_sides(esp, side):
    a, b, sa, peer, clock = established(esp)
    rekeyer = sa if side == "initiator" else peer
    (old,) = rekeyer.children
    (old_peer,) = (peer if rekeyer is sa else sa).children
    rekeyer.children.rekey(old, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    pairs_match(sa, peer)
    (new,) = rekeyer.children
    assert new.spi_in != old.spi_in and new.keys != old.keys
    assert str(new.suite) == esp
    us, them = (a, b) if rekeyer is sa else (b, a)
    installed = us.of(ChildSaInstalled)[-1]
    assert installed.replaces == old.spi_in and not installed.defer_outbound
    assert them.of(ChildSaInstalled)[-1].replaces == old_peer.spi_in
    assert them.of(ChildSaInstalled)[-1].defer_outbound  # make-before-break on the responder
    (rekeyed,) = us.of(ChildSaRekeyed)
    assert (rekeyed.old_spi_in, rekeyed.spi_in) == (old.spi_in, new.spi_in)
    assert [e.spi_in for e in us.of(ChildSaDeleted)] == [old.spi_in]
    assert [e.spi_in for e in them.of(ChildSaDeleted)] == [old_peer.spi_in]


def test_lifetimes_drive_rekeys_and_never_leave_duplicates():
    a, b, sa, peer, clock = established(rekey_time=10.0, right_rekey_time=13.0)
    start = clock.now
    run_until_idle(a, b, clock, until=start + 1000)
    assert sa.state is IkeState.ESTABLISHED
    assert len(sa.children) == 1 and len(peer.children) == 1
    pairs_match(sa, peer)
    rekeys = len([e for e in a.of(ChildSaInstalled) if e.replaces])
    assert rekeys >= 1000 / 13  # about every 9-10 s from the left, jittered
    assert a.of(ChildSaFailed) == [] and b.of(ChildSaFailed) == []


def test_rekey_jitter_stays_inside_rand_time():
    a, b, sa, peer, clock = established(rekey_time=100.0)
    installed = a.of(ChildSaInstalled)[-1]
    assert clock.now + 90 <= installed.limits.rekey_at <= clock.now + 100  # rand_time = 10 s
    assert installed.limits.expires_at == pytest.approx(clock.now + 110)


@pytest.mark.parametrize("side", ["initiator", "responder"])
@pytest.mark.parametrize("ike", ["aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"])
def test_ike_sa_rekey_moves_the_children(side, ike):
    #   HDR(old SPIs), SK {SA(new SPIi), Ni, KEi} -->
    #                 <-- HDR(old SPIs), SK {SA(new SPIr), Nr, KEr}
    #   HDR(old SPIs), SK {D(IKE)} -->          (the CHILD SAs now live on the new IKE SA)
    from ikepulse.core.events import IkeSaDeleted, IkeSaRekeyed

    a, b = make_peers({"ike": ike}, {"ike": ike})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (peer,) = b.manager.sas.values()
    (child,) = sa.children
    (sa if side == "initiator" else peer).rekey(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    (new,) = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    (new_peer,) = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(a.manager.sas) == 1 and len(b.manager.sas) == 1  # the old ones are gone
    assert (new.spi_i, new.spi_r) == (new_peer.spi_i, new_peer.spi_r)
    assert new.spi_i not in (sa.spi_i, sa.spi_r) and new.sk.keys == new_peer.sk.keys
    assert new.sk.keys.sk_d != sa.sk.keys.sk_d
    assert list(new.children) == [child] and len(new_peer.children) == 1
    assert a.of(ChildSaDeleted) == [] and b.of(ChildSaDeleted) == []
    assert len(a.of(IkeSaRekeyed)) == 1 and len(b.of(IkeSaRekeyed)) == 1
    assert len(a.of(IkeSaDeleted)) == 1 and len(b.of(IkeSaDeleted)) == 1
    # The new IKE SA works: a CHILD rekey and a delete run over it.
    new.children.rekey(child, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    pairs_match(new, new_peer)
    new.delete(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert a.manager.sas == {} and b.manager.sas == {}


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_child_work_queued_behind_an_ike_rekey_is_done_on_the_new_ike_sa(side):
    #   left                                          right
    #   IKE SA rekey in flight (ours or the peer's); queued behind it on left:
    #   a CHILD SA rekey and the delete of another CHILD SA
    #   the old IKE SA goes with its queue; the new one rekeys and deletes them
    a, b, sa, peer, clock = established()
    sa.children.create(sa.connection.children[0], clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    keep, drop = sa.children
    (sa if side == "initiator" else peer).rekey(clock.now)
    if side == "responder":
        sa.check_liveness(clock.now)  # busy, so what follows is only queued
    sa.children.rekey(keep, clock.now)
    sa.children.delete(sa.children.entry(drop), clock.now)
    run_until_idle(a, b, clock, until=clock.now + 5)
    (new,) = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    (rekeyed,) = new.children
    assert new is not sa and rekeyed.spi_in not in (keep.spi_in, drop.spi_in)
    assert new.children.entry(rekeyed).phase.value == "INSTALLED"
    assert {e.spi_in for e in a.of(ChildSaDeleted)} == {keep.spi_in, drop.spi_in}
    (new_peer,) = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    pairs_match(new, new_peer)


def test_ike_and_child_lifetimes_together_for_a_simulated_day():
    a, b = make_peers(
        {"rekey_time": 60.0, "ike_rekey_time": 600.0}, {"rekey_time": 70.0, "ike_rekey_time": 900.0}
    )
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 86400, max_steps=1_000_000)
    from ikepulse.core.events import IkeSaRekeyed

    assert len(a.of(IkeSaRekeyed)) >= 86400 / 900
    live = [s for s in a.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    peer = [s for s in b.manager.sas.values() if s.state is IkeState.ESTABLISHED]
    assert len(live) == 1 and len(peer) == 1 and len(a.manager.sas) == 1
    pairs_match(live[0], peer[0])
    assert a.of(ChildSaFailed) == [] and b.of(ChildSaFailed) == []


def test_packet_and_byte_counts_drive_rekeys_and_expiry():
    # rekey_packets 1000 (rand: up to 100 earlier), life_packets 1100 by default; bytes alike
    limits = {"rekey_packets": 1000, "rekey_bytes": 10_000_000, "life_bytes": 12_000_000}
    a, b = make_peers({"child": limits}, {"child": limits})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (old,) = sa.children
    installed = a.of(ChildSaInstalled)[-1].limits
    assert 900 <= installed.rekey_packets <= 1000 and installed.life_packets == 1100
    assert 8_000_000 <= installed.rekey_bytes <= 10_000_000 and installed.life_bytes == 12e6
    assert installed.rekey_at is None and installed.expires_at is None  # rekey_time 0
    a.manager.esp_usage(old.spi_in, 5000, 899, clock.now)  # below both marks: nothing
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert list(sa.children) == [old]
    a.manager.esp_usage(old.spi_in, 5000, 1000, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    (peer,) = b.manager.sas.values()
    pairs_match(sa, peer)
    (new,) = sa.children
    assert new.spi_in != old.spi_in
    # the hard byte limit closes a CHILD SA that could not be rekeyed in time
    a.manager.esp_usage(new.spi_in, 12_000_000, 10, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert list(sa.children) == [] and list(peer.children) == []
    assert [e.spi_in for e in a.of(ChildSaDeleted)] == [old.spi_in, new.spi_in]


def _live(peer) -> list:
    return [s for s in peer.manager.sas.values() if s.state is IkeState.ESTABLISHED]


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_reauthentication_is_make_before_break(side):
    #   reauthenticating side                      other side
    #   IKE_SA_INIT (new SPIs) -->                 <-- IKE_SA_INIT
    #   IKE_AUTH {IDi, AUTH, SA, TSi, TSr} -->     (no INITIAL_CONTACT: the old IKE SA stays)
    #                                              <-- IKE_AUTH {IDr, AUTH, SA, TSi, TSr}
    #   old IKE SA: INFORMATIONAL {D(IKE)} -->     <-- {}
    from ikepulse.core.events import IkeSaDeleted, IkeSaReauthenticated

    a, b, sa, peer, clock = established()
    us, them = (a, b) if side == "initiator" else (b, a)
    old = sa if side == "initiator" else peer
    (old_child,) = old.children
    new = old.reauthenticate(clock.now)
    assert old.reauthenticate(clock.now) is None  # one at a time
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert _live(a) == [s for s in a.manager.sas.values()] and len(_live(a)) == 1
    (mine,), (theirs,) = _live(us), _live(them)
    assert mine is new and (theirs.spi_i, theirs.spi_r) == (new.spi_i, new.spi_r)
    assert new.initiator and not theirs.initiator and new.sk.keys == theirs.sk.keys
    pairs_match(mine, theirs)
    assert mine.children[0].spi_in != old_child.spi_in
    (event,) = us.of(IkeSaReauthenticated)
    assert (event.old_spi_i, event.spi_i) == (old.spi_i, new.spi_i)
    # make-before-break: the new CHILD SA was installed before the old one went, on both sides
    for peer_ in (us, them):
        kinds = [
            type(e).__name__ for e in peer_.events if type(e) in (ChildSaInstalled, ChildSaDeleted)
        ]
        assert kinds[-2:] == ["ChildSaInstalled", "ChildSaDeleted"]
    (deleted,) = them.of(IkeSaDeleted)
    assert deleted.by_peer and deleted.spi_i == old.spi_i  # deleted, not silently replaced


def test_the_side_answering_a_reauthentication_sends_on_the_old_child_sa_until_it_goes():
    #   reauthenticating side                      other side (us)
    #   IKE_AUTH {.., SA, TSi, TSr} -->            new CHILD SA installed, not sent on yet
    #                                              <-- IKE_AUTH {.., SA, TSi, TSr}
    #   (installs the new CHILD SA only now)
    #   old IKE SA: INFORMATIONAL {D(IKE)} -->     the old CHILD SA goes: send on the new one
    # Sending on the new SA at once would lose what reaches the peer before it installed it.
    from test_rekey_collisions import _outbound_trace

    a, b, sa, peer, clock = established()
    (old_child,) = peer.children
    sa.reauthenticate(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    (new,) = _live(b)
    (new_child,) = new.children
    installed = b.of(ChildSaInstalled)[-1]
    assert installed.replaces == old_child.spi_in and installed.defer_outbound
    assert _outbound_trace(b.events) == [old_child.spi_in, old_child.spi_in, new_child.spi_in]
    (mine,) = _live(a)  # the reauthenticating side sends on its new SA as soon as it has it
    assert _outbound_trace(a.events)[-2:] == [mine.children[0].spi_in] * 2


def test_reauth_time_renews_the_ike_sa_again_and_again():
    a, b = make_peers({"reauth_time": 100.0}, {})
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1000)
    from ikepulse.core.events import IkeSaReauthenticated

    assert 1000 / 100 <= len(a.of(IkeSaReauthenticated)) <= 1000 / 90 + 1
    (sa,), (peer,) = _live(a), _live(b)
    assert len(a.manager.sas) == 1 and len(b.manager.sas) == 1
    pairs_match(sa, peer)
    over_time = 10
    assert sa.renewal.expires_at == pytest.approx(sa.renewal.reauth_at + over_time, abs=10)


def test_a_failed_reauthentication_keeps_the_old_ike_sa_and_tries_again():
    a, b, sa, peer, clock = established()
    blocked_until = clock.now + 200

    def new_ike_sa_blocked(datagram) -> bool:  # IKE_SA_INIT requests carry a zero SPIr
        return clock.now < blocked_until and datagram.data[8:16] == bytes(8)

    sa.reauthenticate(clock.now)
    run_until_idle(a, b, clock, drop=new_ike_sa_blocked, until=clock.now + 400)
    from ikepulse.core.events import IkeSaFailed, IkeSaReauthenticated

    assert len(a.of(IkeSaFailed)) >= 1 and len(a.of(IkeSaReauthenticated)) == 1
    (new,), (theirs,) = _live(a), _live(b)
    assert new is not sa and sa.state is IkeState.DELETED
    pairs_match(new, theirs)


def test_a_reauthentication_deleted_before_it_took_over_is_tried_again():
    a, b, sa, peer, clock = established()
    new = sa.reauthenticate(clock.now)
    new.deleted(by_peer=True, now=clock.now)  # e.g. the peer deleted it at once
    assert sa.renewal.reauthenticating is None and sa.renewal.reauth_at is not None
    run_until_idle(a, b, clock, until=clock.now + 60)
    from ikepulse.core.events import IkeSaReauthenticated

    assert len(a.of(IkeSaReauthenticated)) == 1 and sa.state is IkeState.DELETED
    (mine,), (theirs,) = _live(a), _live(b)
    pairs_match(mine, theirs)


def test_a_second_ike_sa_without_initial_contact_does_not_replace_the_first():
    # unique = no (strongSwan's default): only INITIAL_CONTACT makes the responder drop others
    a, b, sa, peer, clock = established()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 1)
    assert len(_live(a)) == 2 and len(_live(b)) == 2 and peer in _live(b)


def test_status_text_shows_age_next_rekey_and_expiry():
    import time

    from ikepulse.cli.status import format_status
    from ikepulse.core.status import ike_sa_status

    a, b = make_peers(
        {"rekey_time": 3600.0, "ike_rekey_time": 14400.0, "child": {"rekey_packets": 1000}}, {}
    )
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    text = format_status([ike_sa_status(sa, time.time() - clock.now)])
    ike_line = next(line for line in text.splitlines() if "established" in line)
    child_line = next(line for line in text.splitlines() if "installed" in line)
    rekey, expires = (int(part.split(" in ")[1].rstrip("s")) for part in ike_line.split(", ")[1:])
    assert 12960 - 2 <= rekey <= 14400 and expires == pytest.approx(15840, abs=2)
    assert "rekeying in" in child_line and "expires in 39" in child_line
    assert "rekeying after" in child_line and "packets" in child_line


def test_esp_for_an_spi_still_being_negotiated_is_not_reported_invalid():
    a, b, sa, peer, clock = established()
    pending = a.manager.allocate_esp_spi()  # offered in a request, not installed yet
    a.manager.esp_unknown_spi(pending, RIGHT[0], clock.now)
    a.manager.esp_unknown_spi(b"\x00\x00\x12\x34", RIGHT[0], clock.now)
    assert a.manager.counters["invalid_spi_reports_sent"] == 1


def test_a_refused_child_rekey_is_retried_a_little_later_until_the_hard_lifetime():
    # The peer's ESP proposal wants another DH group: IKE_AUTH works (it carries no KE), each
    # CREATE_CHILD_SA is refused. Retries come 5-15 s apart, never in a burst.
    a, b = make_peers(
        {"esp": "aes256gcm16-x25519", "rekey_time": 100.0}, {"esp": "aes256gcm16-modp2048"}
    )
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (child,) = sa.children
    limits = sa.children.entry(child).limits
    window = limits.expires_at - limits.rekey_at  # 10-20 s from the first try to the end
    run_until_idle(a, b, clock, until=clock.now + 120)
    attempts = requests_sent(a, ExchangeType.CREATE_CHILD_SA)
    assert 2 <= attempts <= window / 5 + 1
    assert list(sa.children) == [] and sa.state is IkeState.ESTABLISHED  # expired: life_time 110 s


def test_a_refused_ike_rekey_is_retried_a_little_later():
    a, b, sa, peer, clock = established()
    other = (parse_ike_proposal("aes128-sha256-modp3072"),)
    peer.connection = replace(peer.connection, proposals=other)
    sa.rekey(clock.now)
    run_until_idle(a, b, clock, until=clock.now + 60)
    attempts = requests_sent(a, ExchangeType.CREATE_CHILD_SA)
    assert 4 <= attempts <= 60 / 5 + 1
    assert a.manager.counters["ike_rekeys_failed"] == attempts
    assert list(a.manager.sas.values()) == [sa] and sa.state is IkeState.ESTABLISHED


def test_a_hard_lifetime_running_out_while_our_rekey_waits_for_its_answer():
    #   left                                          right
    #   t=100 CREATE_CHILD_SA {N(REKEY_SA, old)..} --> (answer lost)
    #   t=101 life_time over: the old SA is being deleted (queued behind the rekey)
    #   t=104 retransmit -->                       <-- {SA, Nr, TSi, TSr}
    #   the new SA is installed, the old one deleted once; nothing is left over
    lifetimes = {"life_time": 101.0, "rand_time": 0.0}
    a, b = make_peers({"rekey_time": 100.0, "child": lifetimes}, {})
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    (old,) = sa.children
    lost = []

    def first_rekey_answer(datagram):
        message = decode_message(datagram.data)
        if message.exchange == ExchangeType.CREATE_CHILD_SA and message.is_response and not lost:
            lost.append(datagram)
            return True
        return False

    run_until_idle(a, b, clock, drop=first_rekey_answer, until=clock.now + 110)
    (new,) = sa.children
    assert lost and new.spi_in != old.spi_in and sa.state is IkeState.ESTABLISHED
    assert [e.spi_in for e in a.of(ChildSaDeleted)] == [old.spi_in]
    assert sa.children.entry(new).phase.value == "INSTALLED"
