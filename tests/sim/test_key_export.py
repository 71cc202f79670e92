"""Wireshark key export (``[daemon] save_keys``): both peers of an in-memory tunnel write
the same IKE line and the same two ESP lines, in the formats of Wireshark's
``ikev2_decryption_table`` and ``esp_sa``.
"""

from __future__ import annotations

import logging
import random
import re
import stat

from ikepulse.core.events import ChildSaInstalled, IkeSaEstablished, IkeSaRekeyed
from ikepulse.core.sa_manager import SaManager
from ikepulse.runtime.event_log import log_event
from ikepulse.runtime.save_keys import ESP_TABLE, IKE_TABLE, KeyExport
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


def _peers(export_keys: bool = True, **kw) -> tuple[Peer, Peer]:
    """make_peers' two gateways, their managers asked to export keys (``save_keys``)."""
    left = connection("left.example", "right.example", LEFT_NET, RIGHT_NET, **kw)
    right = connection("right.example", "left.example", RIGHT_NET, LEFT_NET, **kw)
    return (
        Peer(SaManager([left], random.Random(1), export_keys=export_keys), LEFT),
        Peer(SaManager([right], random.Random(2), export_keys=export_keys), RIGHT),
    )


def _exported(tmp_path, ike: str, esp: str):
    a, b = _peers(ike=ike, esp=esp)
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    dirs = []
    for name, peer in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        export = KeyExport(str(tmp_path / name))
        for event in peer.drain_events():
            export.on_event(event)
        dirs.append(tmp_path / name)
    return a, b, dirs


def test_aead_tunnel_lines_match_on_both_peers(tmp_path):
    a, b, (da, db) = _exported(tmp_path, "aes256gcm16-prfsha256-x25519", "aes256gcm16")
    ike_a = (da / IKE_TABLE).read_text()
    assert ike_a == (db / IKE_TABLE).read_text()
    (event,) = a.of(IkeSaEstablished)
    spi_i, spi_r, ei, er, enc, ai, ar, integ = ike_a.strip().split(",")
    assert (spi_i, spi_r) == (event.spi_i.hex(), event.spi_r.hex())
    assert len(ei) == len(er) == 2 * 36  # 32-octet key + 4-octet salt (RFC 5282)
    assert ei != er
    assert enc == '"AES-GCM-256 with 16 octet ICV [RFC5282]"'
    assert (ai, ar, integ) == ("", "", '"NONE [RFC4306]"')

    esp_a = (da / ESP_TABLE).read_text().splitlines()
    assert esp_a == (db / ESP_TABLE).read_text().splitlines()
    (child,) = a.of(ChildSaInstalled)
    line = re.compile(
        r'"IPv4","([\d.]+)","([\d.]+)","0x([0-9a-f]{8})","AES-GCM with 16 octet ICV \[RFC4106\]",'
        r'"0x([0-9a-f]{72})","NULL","0x"'
    )
    first, second = (line.fullmatch(text).groups() for text in esp_a)
    # initiator (a, left) to responder first, under the responder's SPI, and back
    assert first[:3] == (LEFT[0], RIGHT[0], child.spi_out.hex())
    assert second[:3] == (RIGHT[0], LEFT[0], child.spi_in.hex())
    assert (first[3], second[3]) == (child.keys.encr_i.hex(), child.keys.encr_r.hex())
    assert stat.S_IMODE((da / ESP_TABLE).stat().st_mode) == 0o600


def test_cbc_hmac_tunnel_names_integrity(tmp_path):
    _, _, (da, _) = _exported(tmp_path, "aes128-sha256-modp2048", "aes128-sha256")
    fields = (da / IKE_TABLE).read_text().strip().split(",")
    assert fields[4] == '"AES-CBC-128 [RFC3602]"'
    assert fields[7] == '"HMAC_SHA2_256_128 [RFC4868]"'
    assert len(fields[5]) == len(fields[6]) == 64
    for text in (da / ESP_TABLE).read_text().splitlines():
        parts = text.split(",")
        assert parts[4] == '"AES-CBC [RFC3602]"' and parts[6] == '"HMAC-SHA-256-128 [RFC4868]"'
        assert len(parts[5]) == len('"0x"') + 32 and len(parts[7]) == len('"0x"') + 64


def test_algorithms_wireshark_lacks_are_skipped(tmp_path):
    _, _, (da, _) = _exported(tmp_path, "chacha20poly1305-prfsha256-x25519", "chacha20poly1305")
    assert not (da / IKE_TABLE).exists() and not (da / ESP_TABLE).exists()


def test_keys_stay_out_of_log_lines_and_reprs(tmp_path, caplog):
    a, _, (da, _) = _exported(tmp_path, "aes256gcm16-prfsha256-x25519", "aes256gcm16")
    (event,) = a.of(IkeSaEstablished)
    caplog.set_level(logging.DEBUG)
    log_event(event)
    sk_ei = event.keys.sk_ei.hex()
    assert sk_ei in (da / IKE_TABLE).read_text()
    assert sk_ei not in caplog.text and sk_ei not in repr(event)


def test_ike_rekey_appends_the_new_sa(tmp_path):
    ike = "aes256gcm16-prfsha256-x25519"
    a, b = _peers(ike=ike)
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    a.manager.renew("site", clock.now, None, True, False)
    run_until_idle(a, b, clock, until=clock.now + 1)
    export = KeyExport(str(tmp_path))
    for event in a.drain_events():
        export.on_event(event)
    (rekeyed,) = a.of(IkeSaRekeyed)
    lines = (tmp_path / IKE_TABLE).read_text().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{rekeyed.spi_i.hex()},{rekeyed.spi_r.hex()},")


def test_unwritable_directory_is_logged_not_raised(tmp_path, caplog):
    export = KeyExport(str(tmp_path / "missing"))
    a, _, _ = _exported(tmp_path, "aes256gcm16-prfsha256-x25519", "aes256gcm16")
    with caplog.at_level(logging.WARNING):
        for event in a.drain_events():
            export.on_event(event)
    assert export.failures == 2
    assert "cannot write" in caplog.text


def test_without_save_keys_the_ike_keys_never_leave_the_core(tmp_path):
    a, b = _peers(export_keys=False)
    clock = Clock()
    a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock)
    a.manager.renew("site", clock.now, None, True, False)
    run_until_idle(a, b, clock, until=clock.now + 1)
    events = a.of(IkeSaEstablished) + a.of(IkeSaRekeyed) + b.of(IkeSaEstablished)
    assert len(events) == 3 and all(e.keys is None for e in events)
