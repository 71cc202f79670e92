"""``ikepulse decode`` on real strongSwan 5.9.8 messages (tests/fixtures/capture/record.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ikepulse.cli.main import main

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "capture").glob("*/*.bin"))
GROUPS = {"x25519": "CURVE25519", "modp2048": "MODP_2048", "ecp384": "ECP_384"}


def decode(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["decode", *args], input=input)


def test_fixtures_exist():
    assert len(FIXTURES) == 18


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_decodes_strongswan_message(path):
    result = decode(str(path))
    assert result.exit_code == 0, result.output
    msg = json.loads(result.output)
    _, exchange, kind, _ = path.stem.split("-")
    assert msg["exchange"] == exchange.upper()
    assert ("RESPONSE" in msg["flags"]) == (kind == "response")
    types = [p["type"] for p in msg["payloads"]]
    if exchange == "ike_sa_init":
        assert types[:3] == ["SA", "KE", "NONCE"]
        ke = msg["payloads"][1]
        assert ke["group"] == GROUPS[path.parent.name]
        notifies = [p["notify_type"] for p in msg["payloads"] if p["type"] == "NOTIFY"]
        assert "NAT_DETECTION_SOURCE_IP" in notifies
        transforms = msg["payloads"][0]["proposals"][0]["transforms"]
        assert {t["type"] for t in transforms} >= {"ENCR", "PRF", "DH"}
        assert any("key_length" in t for t in transforms if t["type"] == "ENCR")
    else:
        assert types == ["SK"]
        sk = msg["payloads"][0]
        assert sk["encrypted"] and sk["length"] > 16
        if exchange == "ike_auth":
            assert sk["next_payload"] == ("IDI" if kind == "request" else "IDR")
        if exchange == "informational" and kind == "request":
            assert sk["next_payload"] == "DELETE"


def test_notify_types_are_named():
    path = next(p for p in FIXTURES if "01-ike_sa_init-request" in p.name)
    msg = json.loads(decode(str(path)).output)
    notifies = [p["notify_type"] for p in msg["payloads"] if p["type"] == "NOTIFY"]
    assert notifies[:2] == ["NAT_DETECTION_SOURCE_IP", "NAT_DETECTION_DESTINATION_IP"]
    assert "IKEV2_FRAGMENTATION_SUPPORTED" in notifies


@pytest.mark.parametrize("path", FIXTURES[:6], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_truncation_fails_with_one_line(path):
    data = path.read_bytes()
    for cut in range(len(data)):
        result = decode("-", input=data[:cut])
        assert result.exit_code == 1, f"truncated at {cut}: {result.output}"
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "offset" in lines[0], lines


def test_hex_input_and_stdin():
    data = FIXTURES[0].read_bytes()
    assert decode("--hex", "-", input=data.hex().encode()).exit_code == 0
    assert json.loads(decode("-", input=data).output)["exchange"] == "IKE_SA_INIT"


def test_garbage_exits_1_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "ikepulse.cli", "decode", "-"],
        input=b"\x00" * 27,
        capture_output=True,
    )
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode().startswith("error: malformed IKE message at offset")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_codec_reencodes_strongswan_messages_byte_for_byte(path):
    from ikepulse.wire.message import decode_message, encode_message

    data = path.read_bytes()
    assert encode_message(decode_message(data)) == data
