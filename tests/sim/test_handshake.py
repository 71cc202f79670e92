"""Two in-memory peers establish IKE and CHILD SAs (RFC 7296 §1.2).

left (initiator)                         right (responder)
IKE_SA_INIT  HDR, SAi1, KEi, Ni, N(NATD) -->
             <-- HDR, SAr1, KEr, Nr, N(NATD)
IKE_AUTH     HDR, SK {IDi, IDr, AUTH, SAi2, TSi, TSr} -->
             <-- HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
"""

from __future__ import annotations

import pytest

from ikepulse.core.events import ChildSaInstalled, IkeSaEstablished
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import (
    LEFT,
    LEFT_NET,
    RIGHT,
    RIGHT_NET,
    Clock,
    make_peers,
    run_until_idle,
)

IKE_SUITES = [
    "aes256gcm16-prfsha256-x25519",
    "aes128-sha256-modp2048",
    "aes256-sha384-ecp384",
    "chacha20poly1305-prfsha256-x25519",
]
GROUPS = ["modp2048", "modp3072", "modp4096", "ecp256", "ecp384", "ecp521", "x25519", "x448"]


def establish(ike: str = IKE_SUITES[0], esp: str = "aes256gcm16", seed: int = 1):
    a, b = make_peers({"ike": ike, "esp": esp}, {"ike": ike, "esp": esp}, seed=seed)
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    return a, b, sa, clock


def _check_established(a, b, sa, ike: str, esp: str) -> None:
    assert sa.state is IkeState.ESTABLISHED
    (ea,), (eb,) = a.of(IkeSaEstablished), b.of(IkeSaEstablished)
    assert (ea.spi_i, ea.spi_r) == (eb.spi_i, eb.spi_r)
    assert ea.proposal == eb.proposal == ike
    assert ea.initiator and not eb.initiator
    (ca,), (cb,) = a.of(ChildSaInstalled), b.of(ChildSaInstalled)
    assert ca.spi_in == cb.spi_out and ca.spi_out == cb.spi_in
    assert ca.keys == cb.keys
    assert len(ca.keys.encr_i) == len(ca.keys.encr_r) > 0
    assert ca.keys.encr_i != ca.keys.encr_r
    assert ca.proposal == cb.proposal == esp
    assert [str(t) for t in ca.local_ts] == [LEFT_NET] == [str(t) for t in cb.remote_ts]
    assert [str(t) for t in ca.remote_ts] == [RIGHT_NET] == [str(t) for t in cb.local_ts]


@pytest.mark.parametrize("ike", IKE_SUITES)
def test_every_ike_suite_establishes_with_identical_keys(ike):
    esp = "aes128-sha256" if "gcm" not in ike else "aes256gcm16"
    a, b, sa, _ = establish(ike, esp)
    _check_established(a, b, sa, ike, esp)
    (peer,) = b.manager.sas.values()
    assert peer.sk.keys == sa.sk.keys


@pytest.mark.parametrize("group", GROUPS)
def test_every_dh_group_establishes(group):
    ike = f"aes256gcm16-prfsha256-{group}"
    a, b, sa, _ = establish(ike)
    _check_established(a, b, sa, ike, "aes256gcm16")


@pytest.mark.parametrize(
    "esp",
    [
        "aes256gcm16",
        "aes128gcm16",
        "aes128-sha256",
        "aes256-sha384",
        "aes256-sha512",
        "chacha20poly1305",
        "aes128-sha1",
    ],
)
def test_esp_suites(esp):
    a, b, sa, _ = establish(esp=esp)
    _check_established(a, b, sa, IKE_SUITES[0], esp)


def test_no_datagrams_or_timers_left_after_setup():
    a, b, sa, _ = establish()
    assert a.manager.get_timer() is None and b.manager.get_timer() is None
    assert a.manager.datagrams_to_send(0) == [] and b.manager.datagrams_to_send(0) == []
    assert sum(a.manager.counters.values()) == 0 and sum(b.manager.counters.values()) == 0
    # IKE_SA_INIT + IKE_AUTH: two requests, two responses.
    assert len(a.sent) == 2 and len(b.sent) == 2


def _child_config(sa_manager, **changes):
    from dataclasses import replace

    (connection,) = sa_manager.connections
    child = replace(connection.children[0], **changes)
    sa_manager.connections = (replace(connection, children=(child,)),)


def test_transport_mode_when_both_sides_want_it():
    from ikepulse.core.connection import Mode

    a, b = make_peers()
    _child_config(a.manager, mode=Mode.TRANSPORT)
    _child_config(b.manager, mode=Mode.TRANSPORT)
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    (ca,), (cb,) = a.of(ChildSaInstalled), b.of(ChildSaInstalled)
    assert ca.mode is cb.mode is Mode.TRANSPORT


def test_responder_narrows_wider_selectors():
    #   TSi 203.0.113.0/24, TSr 203.0.113.64/26 -->
    #              <-- TSi 203.0.113.0/26 (what the responder allows), TSr 203.0.113.64/26
    from ikepulse.wire.traffic_selectors import TrafficSelector

    a, b = make_peers()
    _child_config(a.manager, local_ts=(TrafficSelector.from_network("203.0.113.0/24"),))
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    (ca,), (cb,) = a.of(ChildSaInstalled), b.of(ChildSaInstalled)
    assert [str(t) for t in ca.local_ts] == [LEFT_NET] == [str(t) for t in cb.remote_ts]
