"""The private notify IKEPULSE_ESP_VNET (esp/vnet.py): a CHILD SA carries whole
super-packets only when both peers offer it, in IKE_AUTH and again in CREATE_CHILD_SA.

left                                              right
HDR, SK {IDi, AUTH, N(IKEPULSE_ESP_VNET), SA, TSi, TSr} -->
               <-- HDR, SK {IDr, AUTH, N(IKEPULSE_ESP_VNET), SA, TSi, TSr}   (only if offered)
"""

from __future__ import annotations

import random

import pytest

from ikepulse.core.events import ChildSaInstalled
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.status import ike_sa_status
from ikepulse.esp.plane import EspPlane
from ikepulse.esp.transport_mode import build_ip_packet
from ikepulse.esp.vnet import VNET, is_vnet
from ikepulse.runtime.dataplane import sa_pair
from ikepulse.testing.loopback import (
    LEFT,
    LEFT_NET,
    RIGHT,
    RIGHT_NET,
    Clock,
    Peer,
    connection,
    run_until_idle,
)

TCP = bytes(12) + b"\x50\x10" + bytes(6) * 3000
SUPER = build_ip_packet("203.0.113.5", "203.0.113.69", 6, TCP)
BACK = build_ip_packet("203.0.113.69", "203.0.113.5", 6, TCP)
TSO4 = VNET.pack(1, 1, 40, 1360, 20, 16)


def tunnel(left_vnet: bool, right_vnet: bool):
    left = connection("left.example", "right.example", LEFT_NET, RIGHT_NET)
    right = connection("right.example", "left.example", RIGHT_NET, LEFT_NET)
    a = Peer(SaManager([left], random.Random(1), esp_vnet=left_vnet), LEFT)
    b = Peer(SaManager([right], random.Random(2), esp_vnet=right_vnet), RIGHT)
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    return a, b, sa, clock


def planes(a: Peer, b: Peer) -> tuple[EspPlane, EspPlane]:
    out = []
    for peer in (a, b):
        plane = EspPlane(random.Random(3))
        plane.install(sa_pair(peer.of(ChildSaInstalled)[-1]), 0.0)
        out.append(plane)
    return out[0], out[1]


@pytest.mark.parametrize(
    "left_vnet, right_vnet", [(True, True), (True, False), (False, True), (False, False)]
)
def test_both_peers_must_offer_it_and_a_rekey_keeps_the_answer(left_vnet, right_vnet):
    a, b, sa, clock = tunnel(left_vnet, right_vnet)
    both = left_vnet and right_vnet
    assert [e.vnet for e in a.of(ChildSaInstalled) + b.of(ChildSaInstalled)] == [both, both]
    (child,) = sa.children
    sa.children.rekey(child, clock.now)  # CREATE_CHILD_SA negotiates it again
    run_until_idle(a, b, clock, until=clock.now + 1)
    installed = a.of(ChildSaInstalled) + b.of(ChildSaInstalled)
    assert len(installed) == 4 and all(e.vnet is both for e in installed)
    assert ike_sa_status(sa, 0.0)["children"][0]["vnet"] is both  # shown by `status`


@pytest.mark.parametrize("left_vnet, right_vnet", [(True, False), (False, True)])
def test_a_peer_without_the_flag_never_sees_next_header_253(left_vnet, right_vnet):
    a, b, _, _ = tunnel(left_vnet, right_vnet)
    left, right = planes(a, b)
    for sender, receiver in ((left, right), (right, left)):
        packet = SUPER if sender is left else BACK
        assert not sender.carries_vnet(packet)
        policy, esp = sender.outbound(packet, 1.0, TSO4)
        inner = receiver.inbound(esp, LEFT, 1.0)
        assert inner == packet and not is_vnet(inner)
        status = receiver.status(policy.outbound.spi, 0.0)
        assert status["packets_in"] == 1 and "vnet_drops" not in status


def test_with_both_flags_the_super_packet_arrives_whole():
    a, b, _, _ = tunnel(True, True)
    left, right = planes(a, b)
    assert left.carries_vnet(SUPER)
    inner = right.inbound(left.outbound(SUPER, 1.0, TSO4)[1], LEFT, 1.0)
    assert inner == TSO4 + SUPER
