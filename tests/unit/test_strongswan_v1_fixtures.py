"""The IKEv1 codec and keying against real strongSwan 5.9.8 messages
(tests/fixtures/strongswan_v1: Main, Aggressive and Quick Mode, DPD, Delete, NAT-T).

MANIFEST.json is what tshark's ISAKMP dissector showed for each message (decrypted with the
keys charon logged, keys.json); these tests decode the same bytes with wire.isakmp, re-encode
them, and decrypt them with crypto.ikev1, deriving the keys and IVs (RFC 2409 §5, App. B)
from the capture itself and the PSK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ikepulse.crypto.ikev1 import (
    cbc_for,
    derive_phase1,
    exchange_iv,
    initial_iv,
    natd_hash,
    next_iv,
    phase1_hash,
    prf_v1,
    quick_hash1,
    quick_hash2,
    quick_hash3,
    skeyid_psk,
)
from ikepulse.testing.lab_configs import PSK
from ikepulse.wire.isakmp import decode_chain, decode_isakmp, encode_isakmp
from ikepulse.wire.isakmp_enums import ExchangeV1, NotifyV1, Phase1Attr
from ikepulse.wire.isakmp_payloads import (
    HashV1Payload,
    IdV1Payload,
    KeV1,
    NatDV1,
    NonceV1,
    NotifyV1Payload,
    VendorIdV1,
    payload_type,
)
from ikepulse.wire.isakmp_sa import SaV1

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "strongswan_v1"
MANIFEST = json.loads((HERE / "MANIFEST.json").read_text())
KEYS = json.loads((HERE / "keys.json").read_text())
ENTRIES = [entry for entries in MANIFEST.values() for entry in entries]
SUITES = sorted(MANIFEST)
PHASE1 = (ExchangeV1.MAIN, ExchangeV1.AGGRESSIVE)
RFC3947_VID = "4a131c81070358455c5728f20e95452f"
DPD_VID = "afcad71368a1f1c96b8696fc77570100"


def data(entry: dict) -> bytes:
    return (HERE / entry["file"]).read_bytes()


def types(payloads) -> list[int]:
    return [payload_type(p) for p in payloads]


def test_every_suite_was_recorded():
    assert set(SUITES) == {
        "mm-aes256-sha256",
        "mm-aes128-sha1",
        "aggressive",
        "qm-pfs",
        "dpd",
        "nat",
    }
    assert set(KEYS) == set(SUITES)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_header_matches_tshark(entry):
    msg = decode_isakmp(data(entry))
    assert msg.icookie.hex() == entry["icookie"]
    assert msg.rcookie.hex() == entry["rcookie"]
    assert msg.exchange == entry["exchange_type"]
    assert msg.flags == entry["flags"]
    assert msg.message_id == entry["message_id"]
    assert (msg.message_id == 0) == (msg.exchange in PHASE1)
    assert msg.is_encrypted == entry["encrypted"]
    assert len(data(entry)) == entry["length"]
    if msg.is_encrypted:
        assert msg.chain is None
        assert msg.first_payload == entry["first_payload"]
        assert len(msg.encrypted) == entry["encrypted_length"]
    else:
        assert types(msg.payloads) == [p["type"] for p in entry["payloads"]]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_reencodes_byte_for_byte(entry):
    raw = data(entry)
    msg = decode_isakmp(raw)
    header = (msg.icookie, msg.rcookie, msg.exchange, msg.flags, msg.message_id)
    if msg.is_encrypted:
        again = encode_isakmp(*header, encrypted=(msg.first_payload, msg.encrypted))
    else:
        again = encode_isakmp(*header, payloads=msg.payloads)
    assert again == raw


@pytest.mark.parametrize("suite", SUITES)
def test_first_sa_offer_matches_tshark(suite):
    entry = MANIFEST[suite][0]
    sa = decode_isakmp(data(entry)).chain.first(SaV1)
    (expected_sa,) = [p for p in entry["payloads"] if p["type"] == 1]
    assert len(sa.proposals) == len(expected_sa["proposals"])
    for proposal, expected in zip(sa.proposals, expected_sa["proposals"], strict=True):
        assert proposal.number == expected["number"]
        assert proposal.protocol == expected["protocol"]
        assert proposal.spi.hex() == expected["spi"]
        got = [
            (t.number, t.transform_id, [(a.type, a.number) for a in t.attributes])
            for t in proposal.transforms
        ]
        want = [
            (t["number"], t["transform_id"], [(a["type"], a["value"]) for a in t["attributes"]])
            for t in expected["transforms"]
        ]
        assert got == want
    transform = sa.proposals[0].transforms[0]
    assert transform.attr(Phase1Attr.AUTH_METHOD).number == 1  # pre-shared key


@pytest.mark.parametrize("suite", SUITES)
def test_vendor_ids_and_nat_d_match_tshark(suite):
    for entry in MANIFEST[suite]:
        if entry["encrypted"]:
            continue
        chain = decode_isakmp(data(entry)).chain
        vids = [p["vendor_id"] for p in entry["payloads"] if p["type"] == 13]
        assert [v.data.hex() for v in chain.all(VendorIdV1)] == vids
        natd = [p for p in entry["payloads"] if p["type"] in (20, 130)]
        assert [len(n.hash) for n in chain.all(NatDV1)] == [n["hash_length"] for n in natd]
    first = decode_isakmp(data(MANIFEST[suite][0])).chain
    assert {RFC3947_VID, DPD_VID} <= {v.data.hex() for v in first.all(VendorIdV1)}


@dataclass
class Session:
    """One suite's ISAKMP SA, rebuilt from its cleartext messages and the PSK."""

    hash_id: int
    encr: int
    key_bits: int | None
    cky_i: bytes = b""
    cky_r: bytes = b""
    sai_b: bytes = b""
    g_xi: bytes = b""
    g_xr: bytes = b""
    ni_b: bytes = b""
    nr_b: bytes = b""


def session(suite: str) -> Session:
    first = decode_isakmp(data(MANIFEST[suite][0])).chain
    transform = first.first(SaV1).proposals[0].transforms[0]
    length = transform.attr(Phase1Attr.KEY_LENGTH)
    s = Session(
        hash_id=transform.attr(Phase1Attr.HASH).number,
        encr=transform.attr(Phase1Attr.ENCRYPTION).number,
        key_bits=length.number if length else None,
        sai_b=first.body(first.index(SaV1)),
    )
    for entry in MANIFEST[suite]:
        msg = decode_isakmp(data(entry))
        if msg.is_encrypted or msg.exchange not in PHASE1 or msg.chain.first(KeV1) is None:
            continue
        ke, nonce = msg.chain.first(KeV1).data, msg.chain.first(NonceV1).data
        if entry["sender"] == "left":
            s.g_xi, s.ni_b = ke, nonce
        else:
            s.g_xr, s.nr_b, s.cky_i, s.cky_r = ke, nonce, msg.icookie, msg.rcookie
    return s


@pytest.mark.parametrize("suite", SUITES)
def test_psk_keys_derive_as_strongswan_logged(suite):
    s, logged = session(suite), KEYS[suite]
    prf = prf_v1(s.hash_id)
    cipher = cbc_for(s.encr, s.key_bits)
    skeyid = skeyid_psk(prf, PSK.encode(), s.ni_b, s.nr_b)
    keys = derive_phase1(
        prf, skeyid, bytes.fromhex(logged["g_xy"]), s.cky_i, s.cky_r, cipher.key_size
    )
    assert (s.cky_i.hex(), s.cky_r.hex()) == (logged["icookie"], logged["rcookie"])
    assert keys.skeyid.hex() == logged["skeyid"]
    assert keys.skeyid_d.hex() == logged["skeyid_d"]
    assert keys.skeyid_a.hex() == logged["skeyid_a"]
    assert keys.skeyid_e.hex() == logged["skeyid_e"]
    assert keys.enc_key.hex() == logged["enc_key"]
    iv = initial_iv(s.hash_id, s.g_xi, s.g_xr, cipher.block_size)
    assert iv.hex() == logged["initial_iv"]


def decrypted(suite: str):
    """(entry, message, decrypted chain, plaintext) for each encrypted message, in order,
    with the IVs of App. B: phase 1 chains from hash(g^xi | g^xr); every Quick Mode and
    Informational exchange starts from hash(last phase 1 block | M-ID) and chains on."""
    s = session(suite)
    cipher = cbc_for(s.encr, s.key_bits)
    key = bytes.fromhex(KEYS[suite]["enc_key"])
    phase1_iv = initial_iv(s.hash_id, s.g_xi, s.g_xr, cipher.block_size)
    ivs: dict[int, bytes] = {}
    for entry in MANIFEST[suite]:
        msg = decode_isakmp(data(entry))
        if not msg.is_encrypted:
            continue
        if msg.message_id == 0:
            iv = phase1_iv
            phase1_iv = next_iv(msg.encrypted, cipher.block_size)
        else:
            iv = ivs.get(msg.message_id) or exchange_iv(
                s.hash_id, phase1_iv, msg.message_id, cipher.block_size
            )
            ivs[msg.message_id] = next_iv(msg.encrypted, cipher.block_size)
        plain = cipher.decrypt(key, iv, msg.encrypted)
        yield entry, msg, decode_chain(msg.first_payload, plain, padding=True), plain


@pytest.mark.parametrize("suite", SUITES)
def test_decrypted_payloads_match_tshark(suite):
    seen, block = 0, cbc_for(session(suite).encr, session(suite).key_bits).block_size
    for entry, _msg, chain, plain in decrypted(suite):
        assert types(chain.payloads) == [p["type"] for p in entry["payloads"]], entry["file"]
        used = sum(len(raw) for raw in chain.raw)
        assert plain[used:].hex() == entry["padding"]
        assert 0 < len(plain) - used <= block
        for payload, expected in zip(chain.payloads, entry["payloads"], strict=True):
            if isinstance(payload, NotifyV1Payload):
                assert payload.type == expected["notify_type"]
        seen += 1
    assert seen == sum(e["encrypted"] for e in MANIFEST[suite])


@pytest.mark.parametrize("suite", SUITES)
def test_hashes_verify_as_strongswan_computed(suite):
    """HASH_I/HASH_R (§5) and the Quick Mode / Informational HASH(1..3) (§5.5, §5.7) that
    strongSwan sent, recomputed from the decrypted messages."""
    s, logged = session(suite), KEYS[suite]
    prf = prf_v1(s.hash_id)
    skeyid, skeyid_a = bytes.fromhex(logged["skeyid"]), bytes.fromhex(logged["skeyid_a"])
    ids = {}
    for entry in MANIFEST[suite]:  # Aggressive Mode sends IDs and HASH_R in the clear
        msg = decode_isakmp(data(entry))
        if not msg.is_encrypted and msg.chain.first(IdV1Payload) is not None:
            ids[entry["sender"]] = msg.chain.body(msg.chain.index(IdV1Payload))
    checked = set()
    qm_nonce: dict[int, bytes] = {}
    for entry, msg, chain, _plain in decrypted(suite):
        if chain.first(IdV1Payload) is not None and msg.message_id == 0:
            ids[entry["sender"]] = chain.body(chain.index(IdV1Payload))
        got = chain.first(HashV1Payload).data
        mid = msg.message_id
        if mid == 0:
            continue
        if msg.exchange == ExchangeV1.INFORMATIONAL:
            assert got == quick_hash1(prf, skeyid_a, mid, chain.after(0))
            checked.add("informational")
        elif mid not in qm_nonce:
            qm_nonce[mid] = chain.first(NonceV1).data
            assert got == quick_hash1(prf, skeyid_a, mid, chain.after(0))
            checked.add("hash1")
        elif chain.first(NonceV1) is not None:
            assert got == quick_hash2(prf, skeyid_a, mid, qm_nonce[mid], chain.after(0))
            qm_nonce[mid] = (qm_nonce[mid], chain.first(NonceV1).data)
            checked.add("hash2")
        else:
            ni_b, nr_b = qm_nonce[mid]
            assert got == quick_hash3(prf, skeyid_a, mid, ni_b, nr_b)
            checked.add("hash3")
    assert checked >= {"hash1", "hash2", "hash3", "informational"}
    common = dict(g_xi=s.g_xi, g_xr=s.g_xr, cky_i=s.cky_i, cky_r=s.cky_r, sai_b=s.sai_b)
    hash_i = phase1_hash(prf, skeyid, initiator=True, id_b=ids["left"], **common)
    hash_r = phase1_hash(prf, skeyid, initiator=False, id_b=ids["right"], **common)
    sent = phase1_hashes(suite)
    assert sent == {"left": hash_i, "right": hash_r}


def phase1_hashes(suite: str) -> dict[str, bytes]:
    """HASH_I and HASH_R as sent: in MM5/MM6 (encrypted), or AM2 (clear) and AM3."""
    out = {}
    for entry in MANIFEST[suite]:
        msg = decode_isakmp(data(entry))
        if not msg.is_encrypted and msg.chain.first(HashV1Payload) is not None:
            out[entry["sender"]] = msg.chain.first(HashV1Payload).data
    for entry, msg, chain, _plain in decrypted(suite):
        if msg.message_id == 0:
            out[entry["sender"]] = chain.first(HashV1Payload).data
    return out


@pytest.mark.parametrize("suite", SUITES)
def test_nat_d_for_the_peer_address_is_the_real_hash(suite):
    """The first NAT-D the initiator sends (MM3, or AM3 encrypted) hashes the address and
    port that message goes to (RFC 3947 §3.2: AM3 already on 4500); strongSwan fakes its
    own source hash, the second NAT-D, as kernel-libipsec needs NAT-T."""
    s = session(suite)
    sent = [
        (entry, decode_isakmp(data(entry)).chain)
        for entry in MANIFEST[suite]
        if entry["sender"] == "left" and not entry["encrypted"]
    ] + [(entry, chain) for entry, _m, chain, _p in decrypted(suite) if entry["sender"] == "left"]
    ((entry, natd),) = [(e, chain.all(NatDV1)) for e, chain in sent if chain.all(NatDV1)]
    address, port = entry["dst"].rsplit(":", 1)
    assert len(natd) == 2
    assert natd[0].hash == natd_hash(s.hash_id, s.cky_i, s.cky_r, address, int(port))
    src, src_port = entry["src"].rsplit(":", 1)
    assert natd[1].hash != natd_hash(s.hash_id, s.cky_i, s.cky_r, src, int(src_port))


def test_dpd_suite_has_both_notifies_both_ways():
    seen = {
        (entry["sender"], payload.type)
        for entry, _msg, chain, _plain in decrypted("dpd")
        for payload in chain.all(NotifyV1Payload)
    }
    for sender in ("left", "right"):
        assert (sender, NotifyV1.R_U_THERE) in seen
        assert (sender, NotifyV1.R_U_THERE_ACK) in seen


def test_nat_suite_floats_to_4500_through_a_real_nat():
    entries = MANIFEST["nat"]
    assert entries[0]["src"] == "192.0.2.2:500"
    assert all(e["src"].endswith(":4500") for e in entries if e["encrypted"])
    assert "local host is behind NAT" in (HERE / "nat" / "charon-left.log").read_text()
