"""The sans-IO ESP plane: two planes exchange real ESP (RFC 4303, RFC 3948) on a fake clock.

"left" initiated the CHILD SA, "right" answered; a rekey adds a pair, and make-before-break
(RFC 7296 §2.8) decides which SA carries each side's traffic.
"""

from __future__ import annotations

import random

import pytest

from ikepulse.crypto.keys import ChildKeys
from ikepulse.esp.plane import (
    HOLD_PACKETS,
    HOLD_SECONDS,
    LINGER_SECONDS,
    EspPlane,
    PeerMoved,
    SaPair,
    Trap,
    TrapTriggered,
    UnknownSpi,
    VolumeReached,
)
from ikepulse.esp.sa import EspSa
from ikepulse.esp.transport_mode import build_ip_packet
from ikepulse.wire.enums import EncrId
from ikepulse.wire.traffic_selectors import TrafficSelector

LEFT_GW, RIGHT_GW = ("198.51.100.1", 4500), ("198.51.100.2", 4500)
LEFT_TS = (TrafficSelector.from_network("203.0.113.0/26"),)
RIGHT_TS = (TrafficSelector.from_network("203.0.113.64/26"),)
OLD = (b"\x00\x00\x0a\x01", b"\x00\x00\x0b\x01")  # (left's inbound SPI, right's inbound SPI)
NEW = (b"\x00\x00\x0a\x02", b"\x00\x00\x0b\x02")


def udp(src: str, dst: str, data: bytes = b"hello") -> bytes:
    """An IPv4 UDP packet from port 5000 to 5001 (the checksum is not looked at)."""
    return build_ip_packet(src, dst, 17, b"\x13\x88\x13\x89" + len(data).to_bytes(2) + data)


TO_RIGHT = udp("203.0.113.2", "203.0.113.66")
TO_LEFT = udp("203.0.113.66", "203.0.113.2")


def keys(spis: tuple[bytes, bytes]) -> ChildKeys:
    """AES-256-GCM keys, a different pair for each pair of SPIs."""
    rng = random.Random(spis[0] + spis[1])
    return ChildKeys(rng.randbytes(36), b"", rng.randbytes(36), b"")


def pair(spis: tuple[bytes, bytes], side: str, initiator: str = "left", **kw) -> SaPair:
    """One side's view of a CHILD SA pair; ``initiator`` made its keys; ``kw`` overrides."""
    left = side == "left"
    fields = {
        "connection": "site",
        "child": "lan",
        "spi_in": spis[0] if left else spis[1],
        "spi_out": spis[1] if left else spis[0],
        "encr": (EncrId.AES_GCM_16, 256),
        "integ": None,
        "esn": False,
        "keys": keys(spis),
        "initiator": side == initiator,
        "local_ts": LEFT_TS if left else RIGHT_TS,
        "remote_ts": RIGHT_TS if left else LEFT_TS,
        "local": LEFT_GW if left else RIGHT_GW,
        "peer": RIGHT_GW if left else LEFT_GW,
        "udp_encap": True,
        "transport": False,
        "marks": (),
    }
    return SaPair(**(fields | kw))


def planes(spis=OLD) -> tuple[EspPlane, EspPlane]:
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    left.install(pair(spis, "left"), 0.0)
    right.install(pair(spis, "right"), 0.0)
    return left, right


def notices(plane: EspPlane) -> list:
    found = list(plane.notices)
    plane.notices.clear()
    return found


def carrier(plane: EspPlane, packet: bytes, now: float = 0.0) -> bytes | None:
    """The inbound SPI of the SA that carries ``packet`` out, or None."""
    sealed = plane.outbound(packet, now)
    return None if sealed is None else sealed[0].inbound.spi


def test_first_packet_out_since_the_last_one_in_is_reported_for_on_demand_checks():
    left, right = planes()
    for now in (1.0, 2.0, 3.0):  # three packets out, none back
        left.outbound(TO_RIGHT, now)
    assert left.activity() == [(OLD[0], None, 3.0, 1.0)]
    left.inbound(right.outbound(TO_LEFT, 3.5)[1], RIGHT_GW, 4.0)
    assert left.activity() == [(OLD[0], 4.0, 3.0, None)]


def test_authenticated_new_esp_from_a_new_port_reports_the_peer_moved():
    left, right = planes()
    first, second = (right.outbound(TO_LEFT, t)[1] for t in (1.0, 2.0))
    remapped = (RIGHT_GW[0], 31000)
    tampered = second[:-1] + bytes([second[-1] ^ 1])
    assert left.inbound(tampered, remapped, 2.0) is None  # unauthenticated: nothing moves
    assert left.inbound(second, remapped, 2.0) == TO_LEFT
    assert notices(left) == [PeerMoved(OLD[0], remapped)]
    # An older packet (in window, but not new) from elsewhere moves nothing either.
    assert left.inbound(first, (RIGHT_GW[0], 32000), 2.5) == TO_LEFT
    assert notices(left) == []


def test_round_trip_between_two_planes():
    left, right = planes()
    policy, esp = left.outbound(TO_RIGHT, 1.0)
    assert (policy.local, policy.peer, policy.udp_encap) == (LEFT_GW, RIGHT_GW, True)
    assert esp[:4] == OLD[1] and TO_RIGHT not in esp
    # left initiated: it seals with the initiator-to-responder key (RFC 7296 §2.17)
    i_to_r = EspSa(OLD[1], (EncrId.AES_GCM_16, 256), None, keys(OLD).encr_i)
    assert i_to_r.open(esp) == (TO_RIGHT, 4)
    assert right.inbound(esp, LEFT_GW, 2.0) == TO_RIGHT
    policy, esp = right.outbound(TO_LEFT, 3.0)
    assert policy.peer == LEFT_GW and left.inbound(esp, RIGHT_GW, 4.0) == TO_LEFT
    status = left.status(OLD[0], to_wall=100.0)
    assert (status["packets_out"], status["bytes_out"]) == (1, len(TO_RIGHT))
    assert (status["packets_in"], status["bytes_in"]) == (1, len(TO_LEFT))
    assert (status["last_outbound"], status["last_inbound"]) == (101.0, 104.0)
    assert left.activity() == [(OLD[0], 4.0, 1.0, None)]  # the last packet came in
    assert right.activity() == [(OLD[1], 2.0, 3.0, 3.0)]
    assert left.status(b"\xff" * 4, 100.0) == {} and notices(left) == notices(right) == []


def test_transport_mode_rebuilds_the_header_from_the_outer_addresses():
    gateways = (TrafficSelector.from_network("198.51.100.1/32"),)
    peers = (TrafficSelector.from_network("198.51.100.2/32"),)
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    left.install(pair(OLD, "left", transport=True, local_ts=gateways, remote_ts=peers), 0.0)
    right.install(pair(OLD, "right", transport=True, local_ts=peers, remote_ts=gateways), 0.0)
    packet = udp(LEFT_GW[0], RIGHT_GW[0])
    _, esp = left.outbound(packet, 0.0)
    assert len(esp) < len(packet) + 20  # ESP adds 34-37 bytes; the 20-byte header is not inside
    assert right.inbound(esp, LEFT_GW, 0.0) == packet


def test_nothing_leaves_in_the_clear_without_an_sa():
    plane = EspPlane(random.Random(1))
    assert plane.outbound(TO_RIGHT, 0.0) is None
    left, _ = planes()
    assert left.outbound(udp("203.0.113.2", "192.0.2.1"), 0.0) is None  # outside the SA
    left.delete(OLD[0], 0.0)
    assert left.outbound(TO_RIGHT, 0.0) is None  # deleted: nothing is sent on it
    assert plane.counters["no_sa_drops"] == 1 and left.counters["no_sa_drops"] == 2


def test_drops_are_counted_per_sa():
    left, right = planes()
    _, esp = left.outbound(TO_RIGHT, 0.0)
    tampered = esp[:-1] + bytes([esp[-1] ^ 1])
    assert right.inbound(tampered, LEFT_GW, 0.0) is None
    assert right.inbound(esp, LEFT_GW, 0.0) == TO_RIGHT
    assert right.inbound(esp, LEFT_GW, 0.0) is None  # replayed
    assert right.inbound(esp[:20], LEFT_GW, 0.0) is None
    status = right.status(OLD[1], 0.0)
    assert (status["auth_failures"], status["replay_drops"], status["malformed_drops"]) == (1, 1, 1)
    assert status["packets_in"] == 1


def test_decrypted_packets_outside_the_selectors_are_dropped():
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    anywhere = (TrafficSelector.from_network("0.0.0.0/0"),)
    left.install(pair(OLD, "left"), 0.0)
    right.install(pair(OLD, "right", local_ts=anywhere), 0.0)
    _, esp = right.outbound(udp("192.0.2.1", "203.0.113.2"), 0.0)
    assert left.inbound(esp, RIGHT_GW, 0.0) is None  # RFC 4301 §5.2
    status = left.status(OLD[0], 0.0)
    assert (status["selector_drops"], status["packets_in"]) == (1, 0)


def test_a_trap_holds_packets_until_the_sa_is_installed():
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    first, second = udp("203.0.113.2", "203.0.113.66", b"1"), udp("203.0.113.2", "203.0.113.66")
    left.add_trap(Trap("site", LEFT_TS, RIGHT_TS))
    assert left.outbound(first, 0.0) is None
    left.add_trap(Trap("site", LEFT_TS, RIGHT_TS))  # the same trap again (dpd_action = hold)
    assert left.outbound(second, 1.0) is None
    assert left.outbound(udp("203.0.113.2", "192.0.2.1"), 1.0) is None  # not the trap's
    assert notices(left) == [TrapTriggered("site")] * 2
    assert left.counters["no_sa_drops"] == 1
    left.install(pair(OLD, "left"), 2.0)
    right.install(pair(OLD, "right"), 2.0)
    released = left.esp_to_send()
    assert [right.inbound(esp, LEFT_GW, 2.0) for _, esp in released] == [first, second]
    assert left.esp_to_send() == [] and left.status(OLD[0], 0.0)["packets_out"] == 2


def test_held_packets_expire_and_overflow():
    left = EspPlane(random.Random(1))
    left.add_trap(Trap("site", LEFT_TS, RIGHT_TS))
    for i in range(HOLD_PACKETS + 2):
        left.outbound(udp("203.0.113.2", "203.0.113.66", bytes([i])), 0.0)
    assert left.counters["held_dropped"] == 2
    left.install(pair(OLD, "left"), HOLD_SECONDS + 0.1)
    assert left.esp_to_send() == [] and left.counters["held_expired"] == HOLD_PACKETS


def test_a_trap_of_another_connection_keeps_its_packets():
    left = EspPlane(random.Random(1))
    left.add_trap(Trap("other", LEFT_TS, RIGHT_TS))
    left.outbound(TO_RIGHT, 0.0)
    left.install(pair(OLD, "left"), 1.0)
    assert left.esp_to_send() == [] and left.counters["held_expired"] == 0


def test_early_esp_is_replayed_when_its_sa_is_installed():
    #   left (initiator)                        right (responder)
    #   CREATE_CHILD_SA request -->             installs the SA, answers
    #                        <-- ESP on the new SA (overtakes the answer)
    #                        <-- CREATE_CHILD_SA answer: left installs, the ESP is delivered
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    right.install(pair(OLD, "right"), 0.0)
    _, esp = right.outbound(TO_LEFT, 0.0)
    assert left.inbound(esp, RIGHT_GW, 0.5) is None
    assert notices(left) == [UnknownSpi(OLD[0], RIGHT_GW[0])]
    assert left.counters["unknown_spi_drops"] == 1
    left.install(pair(OLD, "left"), 1.0)
    assert left.packets_to_tun() == [TO_LEFT] and left.packets_to_tun() == []
    assert left.counters["early_replayed"] == 1
    assert left.status(OLD[0], 0.0)["last_inbound"] == 1.0


def test_early_esp_expires_after_hold_seconds():
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    right.install(pair(OLD, "right"), 0.0)
    _, esp = right.outbound(TO_LEFT, 0.0)
    left.inbound(esp, RIGHT_GW, 0.0)
    left.install(pair(OLD, "left"), HOLD_SECONDS + 0.1)
    assert left.packets_to_tun() == [] and left.counters["early_replayed"] == 0


def rekeyed(initiator: str = "left") -> tuple[EspPlane, EspPlane]:
    """The old pair in use, then the new one installed by both: the rekey initiator sends
    on it at once, the responder defers (RFC 7296 §2.8)."""
    left, right = planes()
    responder = "right" if initiator == "left" else "left"
    for plane, side in ((left, "left"), (right, "right")):
        old_in = OLD[0] if side == "left" else OLD[1]
        plane.install(
            pair(NEW, side, initiator, replaces=old_in, defer_outbound=side == responder),
            1.0,
        )
    return left, right


def test_rekey_responder_sends_on_the_old_sa_until_the_peer_uses_the_new_one():
    left, right = rekeyed()
    assert carrier(right, TO_LEFT) == OLD[1]
    assert carrier(right, TO_LEFT) == OLD[1]  # still: left has not shown it installed NEW
    _, esp = left.outbound(TO_RIGHT, 2.0)
    assert esp[:4] == NEW[1]  # the initiator uses the new SA at once
    assert right.inbound(esp, LEFT_GW, 2.0) == TO_RIGHT
    assert carrier(right, TO_LEFT) == NEW[1]


def test_rekey_responder_moves_to_the_new_sa_when_the_old_is_deleted():
    _, right = rekeyed()
    right.delete(OLD[1], 2.0)
    assert carrier(right, TO_LEFT) == NEW[1]


def test_a_deferred_sa_deleted_before_use_never_carries_traffic():
    _, right = rekeyed()
    right.delete(NEW[1], 2.0)
    assert carrier(right, TO_LEFT) == OLD[1]
    right.delete(OLD[1], 2.0)
    assert carrier(right, TO_LEFT) is None


def test_simultaneous_rekeys_defer_the_answered_sa_to_our_own_successor():
    #   right                                        left
    #   <-- CREATE_CHILD_SA {REKEY_SA(old)} (left's)  CREATE_CHILD_SA {REKEY_SA(old)} -->
    #   answers: installs ANSWERED, deferred          ...
    #   <-- answer to right's rekey: installs OURS, replacing old
    # ANSWERED now waits for OURS, which carries the traffic, and takes over only if OURS is
    # deleted (it lost the nonce comparison, RFC 7296 §2.8.1).
    answered, ours = NEW, (b"\x00\x00\x0a\x03", b"\x00\x00\x0b\x03")
    _, right = planes()
    right.install(pair(answered, "right", replaces=OLD[1], defer_outbound=True), 1.0)
    right.install(pair(ours, "right", initiator="right", replaces=OLD[1]), 1.1)
    assert carrier(right, TO_LEFT) == ours[1]
    right.delete(OLD[1], 2.0)
    assert carrier(right, TO_LEFT) == ours[1]  # not the answered one
    right.delete(ours[1], 3.0)
    assert carrier(right, TO_LEFT) == answered[1]


def test_simultaneous_rekeys_answered_sa_deleted_as_redundant_never_takes_over():
    answered, ours = NEW, (b"\x00\x00\x0a\x03", b"\x00\x00\x0b\x03")
    _, right = planes()
    right.install(pair(answered, "right", replaces=OLD[1], defer_outbound=True), 1.0)
    right.install(pair(ours, "right", initiator="right", replaces=OLD[1]), 1.1)
    right.delete(answered[1], 2.0)  # the peer's redundant SA goes
    right.delete(OLD[1], 2.0)
    right.delete(ours[1], 3.0)
    assert carrier(right, TO_LEFT) is None


@pytest.mark.parametrize("direction", ["outbound", "inbound"])
def test_lifetime_marks_are_reported_once_each(direction):
    left, right = EspPlane(random.Random(1)), EspPlane(random.Random(2))
    marks = ((None, 3), (None, 5))
    left.install(pair(OLD, "left", marks=marks), 0.0)
    right.install(pair(OLD, "right", marks=marks), 0.0)
    send = {
        "outbound": lambda: left.outbound(TO_RIGHT, 0.0),
        "inbound": lambda: left.inbound(right.outbound(TO_LEFT, 0.0)[1], RIGHT_GW, 0.0),
    }[direction]
    reports = []
    for _ in range(7):
        assert send() is not None
        reports.append(notices(left))
    size = len(TO_LEFT)
    assert reports == [
        [],
        [],
        [VolumeReached(OLD[0], 3 * size, 3)],
        [],
        [VolumeReached(OLD[0], 5 * size, 5)],
        [],
        [],
    ]


def test_a_byte_mark_is_reported_once():
    left = EspPlane(random.Random(1))
    left.install(pair(OLD, "left", marks=((2 * len(TO_RIGHT), None),)), 0.0)
    reached = []
    for _ in range(4):
        left.outbound(TO_RIGHT, 0.0)
        reached += notices(left)
    assert reached == [VolumeReached(OLD[0], 2 * len(TO_RIGHT), 2)]


def test_a_deleted_sa_lingers_for_inbound_packets_only():
    left, right = planes()
    in_flight = [right.outbound(TO_LEFT, 0.0)[1] for _ in range(2)]
    assert left.get_timer() is None
    left.delete(OLD[0], 10.0)
    assert left.get_timer() == 10.0 + LINGER_SECONDS
    assert left.outbound(TO_RIGHT, 10.0) is None
    assert left.inbound(in_flight[0], RIGHT_GW, 10.5) == TO_LEFT
    left.handle_timer(10.0 + LINGER_SECONDS - 0.01)
    assert left.status(OLD[0], 0.0)["packets_in"] == 1
    left.handle_timer(10.0 + LINGER_SECONDS)
    assert left.get_timer() is None and left.status(OLD[0], 0.0) == {}
    assert left.inbound(in_flight[1], RIGHT_GW, 12.5) is None
    assert notices(left) == [UnknownSpi(OLD[0], RIGHT_GW[0])]


def test_activity_reports_only_the_sas_in_use_whose_times_moved():
    left, right = rekeyed()  # right: OLD in use, NEW deferred until left sends on it
    assert {spi for spi, *_ in right.activity()} == {OLD[1]}  # new in use, no traffic yet
    assert right.activity() == []  # nothing moved since
    right.outbound(TO_LEFT, 1.0)
    assert right.activity() == [(OLD[1], None, 1.0, 1.0)]
    assert right.activity() == []
    _, esp = left.outbound(TO_RIGHT, 2.0)
    right.inbound(esp, LEFT_GW, 2.5)  # on NEW: right sends on it from now on
    assert right.activity() == [(NEW[1], 2.5, None, None)]
    assert right.activity() == []


def test_traffic_on_a_lingering_sa_is_not_activity():
    left, right = planes()
    late = left.outbound(TO_RIGHT, 1.0)[1]
    right.activity()
    right.delete(OLD[1], 2.0)
    assert right.inbound(late, LEFT_GW, 2.5) == TO_RIGHT  # accepted while it lingers
    assert right.activity() == []
