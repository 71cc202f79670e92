"""MOBIKE notifies (RFC 4555 §3.6) and the address choice when ours goes away."""

from __future__ import annotations

import ipaddress

from ikepulse.core.mobility import (
    HASHES_KEPT,
    MAX_ADDITIONAL_ADDRESSES,
    Mobility,
    address_list,
    natd_hash,
    peer_address_list,
)
from ikepulse.wire.enums import NotifyType
from ikepulse.wire.payloads import NotifyPayload


def test_address_list_leaves_out_the_current_address_and_types_each_family():
    notifies = address_list(("198.51.100.1", "198.51.100.3", "2001:db8::1"), "198.51.100.1")
    assert [n.type for n in notifies] == [
        NotifyType.ADDITIONAL_IP4_ADDRESS,
        NotifyType.ADDITIONAL_IP6_ADDRESS,
    ]
    assert notifies[0].data == bytes([198, 51, 100, 3])
    assert notifies[1].data == ipaddress.ip_address("2001:db8::1").packed


def test_no_other_address_is_said_explicitly():
    (only,) = address_list(("198.51.100.1",), "198.51.100.1")
    assert only == NotifyPayload(NotifyType.NO_ADDITIONAL_ADDRESSES)


def test_address_list_is_capped():
    many = tuple(f"198.51.100.{i}" for i in range(2, 30))
    assert len(address_list(many, "198.51.100.1")) == MAX_ADDITIONAL_ADDRESSES


def test_peer_address_list_round_trips_and_tells_none_from_empty():
    addresses = ("198.51.100.3", "2001:db8::7")
    assert peer_address_list(address_list(addresses, "x")) == addresses
    assert peer_address_list([NotifyPayload(NotifyType.NO_ADDITIONAL_ADDRESSES)]) == ()
    assert peer_address_list([NotifyPayload(NotifyType.COOKIE2, b"c" * 16)]) is None
    bad = NotifyPayload(NotifyType.ADDITIONAL_IP4_ADDRESS, b"\x01\x02")
    assert peer_address_list([bad]) == ()  # a malformed entry is ignored


def test_natd_hash_covers_address_and_port():
    spi_i, spi_r = bytes(range(8)), bytes(range(8, 16))
    a = natd_hash(spi_i, spi_r, ("192.0.2.1", 40000))
    assert len(a) == 20
    assert a != natd_hash(spi_i, spi_r, ("192.0.2.1", 40001))
    assert a != natd_hash(spi_i, spi_r, ("192.0.2.2", 40000))


def test_kept_nat_detection_hashes_are_the_hashes_of_rfc_7296_section_2_23():
    mobility = Mobility()
    spis = (bytes(range(8)), bytes(range(8, 16)))
    paths = [(f"192.0.2.{i}", 4500 + i) for i in range(2 * HASHES_KEPT + 1)]
    for _ in range(2):  # asked again: the kept ones, then the recomputed ones
        for path in paths:
            assert mobility.natd(*spis, path) == natd_hash(*spis, path)
    other_spi = bytes(8)  # new SPIs (an IKE SA rekey keeps no Mobility, but still)
    assert mobility.natd(spis[0], other_spi, paths[0]) == natd_hash(spis[0], other_spi, paths[0])
    assert mobility.natd(spis[0], other_spi, paths[0]) != mobility.natd(*spis, paths[0])
