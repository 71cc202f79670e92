"""48 messages two strongSwan 5.9.8 charons exchanged (tests/fixtures/strongswan/README.md):
decoded, re-encoded byte for byte, and their SK payloads opened with the logged keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ikepulse.crypto.cipher import cipher_for
from ikepulse.crypto.integ import integ_for
from ikepulse.crypto.sk import SkCrypter
from ikepulse.wire.enums import TransformType
from ikepulse.wire.message import decode_message, encode_message, open_encrypted
from ikepulse.wire.sa import SaPayload

HERE = Path(__file__).parent.parent / "fixtures" / "strongswan"
MANIFEST = json.loads((HERE / "MANIFEST.json").read_text())
ENTRIES = [entry for suite in MANIFEST.values() for entry in suite]


def test_all_recordings_are_listed():
    assert len(ENTRIES) == 48
    assert {e["exchange"] for e in ENTRIES} == {
        "ike_sa_init",
        "ike_auth",
        "create_child_sa",
        "informational",
    }


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_decodes_and_reencodes(entry):
    data = (HERE / entry["file"]).read_bytes()
    msg = decode_message(data)
    assert msg.exchange == entry["exchange_type"] and msg.message_id == entry["message_id"]
    assert msg.flags == entry["flags"] and msg.is_response == entry["is_response"]
    assert (msg.spi_i.hex(), msg.spi_r.hex()) == (entry["spi_i"], entry["spi_r"])
    assert [int(p.TYPE) for p in msg.payloads] == [p["type"] for p in entry["payloads"]]
    assert encode_message(msg) == data


def _crypter(entry) -> SkCrypter:
    """Keys from the charon log; algorithms from the suite's IKE_SA_INIT response."""
    suite = MANIFEST[entry["suite"]]
    reply = next(
        e
        for e in suite
        if e["exchange"] == "ike_sa_init"
        and e["is_response"]
        and any(p["name"] == "SA" for p in e["payloads"])
    )
    sa = decode_message((HERE / reply["file"]).read_bytes()).get(SaPayload)[0]
    (proposal,) = sa.proposals
    (encr,) = proposal.of_type(TransformType.ENCR)
    integ = proposal.of_type(TransformType.INTEG)
    keys = entry["sk_keys"]
    side = "i" if entry["is_initiator"] else "r"
    return SkCrypter(
        cipher_for(encr.id, encr.key_length),
        integ_for(integ[0].id) if integ else None,
        bytes.fromhex(keys[f"sk_e{side}"]),
        bytes.fromhex(keys.get(f"sk_a{side}", "")),
    )


ENCRYPTED = [e for e in ENTRIES if "sk_keys" in e]


@pytest.mark.parametrize("entry", ENCRYPTED, ids=lambda e: e["file"])
def test_sk_payload_opens_with_the_logged_keys(entry):
    data = (HERE / entry["file"]).read_bytes()
    msg = decode_message(data)
    inner = open_encrypted(data, msg, _crypter(entry))
    sk = entry["payloads"][-1]
    if inner:
        assert int(inner[0].TYPE) == sk["inner_first_payload"]
    else:
        assert sk["inner_first_payload"] == 0
