"""SKF fragments (RFC 7383 §2.5): splitting and sealing, opening, and the reassembly's
limits against hostile input (§2.6)."""

from __future__ import annotations

import random

import pytest

from ikepulse.core.fragments import Fragmentation, FragmentPolicy, Fragments, max_message
from ikepulse.core.reassembly import (
    MAX_BYTES,
    MAX_FRAGMENTS,
    MAX_SECONDS,
    FragmentDropped,
    Reassembly,
    late_fragment,
)
from ikepulse.crypto.cipher import cipher_for
from ikepulse.crypto.errors import IntegrityError
from ikepulse.crypto.integ import integ_for
from ikepulse.crypto.sk import SkCrypter
from ikepulse.wire.enums import EncrId, ExchangeType, IntegId, PayloadType
from ikepulse.wire.message import (
    FLAG_INITIATOR,
    Message,
    decode_message,
    decode_payloads,
    encode_encrypted,
)
from ikepulse.wire.payloads import EncryptedFragmentPayload, NotifyPayload
from ikepulse.wire.skf import chunk_size, open_fragment, seal_fragments, sk_length
from ikepulse.wire.traffic_selectors import TrafficSelector, TsiPayload, TsrPayload

SUITES = {
    "aes256gcm16": (EncrId.AES_GCM_16, 256, None),
    "chacha20poly1305": (EncrId.CHACHA20_POLY1305, None, None),
    "aes128-sha256": (EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128),
    "aes256-sha512": (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_512_256),
}
HEADER = Message(bytes(range(8)), bytes(range(8, 16)), ExchangeType.IKE_AUTH, FLAG_INITIATOR, 1)


def crypter(name: str) -> SkCrypter:
    encr_id, bits, integ_id = SUITES[name]
    rng = random.Random(5)
    cipher = cipher_for(encr_id, bits)
    integ = None if integ_id is None else integ_for(integ_id)
    integ_key = b"" if integ is None else rng.randbytes(integ.key_size)
    return SkCrypter(cipher, integ, rng.randbytes(cipher.key_size), integ_key)


def selectors(n: int) -> tuple[TrafficSelector, ...]:
    return tuple(TrafficSelector.from_network(f"203.0.113.{i}/32") for i in range(n))


def big_inner(n: int = 100) -> list:
    return [TsiPayload(selectors(n)), TsrPayload(selectors(n)), NotifyPayload(16384)]


def split(name: str, limit: int, inner=None) -> list[bytes]:
    rng = random.Random(9)
    return seal_fragments(HEADER, inner or big_inner(), crypter(name), rng.randbytes, limit)


@pytest.mark.parametrize("name", SUITES)
@pytest.mark.parametrize("limit", [200, 548, 1232])
def test_fragments_fit_reassemble_and_carry_their_numbers(name, limit):
    inner = big_inner()
    datagrams = split(name, limit, inner)
    assert len(datagrams) > 1 and all(len(d) <= limit for d in datagrams)
    chunks, firsts = [], []
    for number, data in enumerate(datagrams, 1):
        msg = decode_message(data)
        skf = msg.encrypted
        assert isinstance(skf, EncryptedFragmentPayload)
        assert (skf.number, skf.total, msg.message_id) == (number, len(datagrams), 1)
        firsts.append(skf.first_inner)
        chunks.append(open_fragment(data, msg, crypter(name)))
    assert firsts[0] == PayloadType.TSI and set(firsts[1:]) == {PayloadType.NONE}
    assert decode_payloads(b"".join(chunks), PayloadType.TSI) == inner


@pytest.mark.parametrize("name", SUITES)
def test_chunk_size_is_the_largest_that_fits(name):
    c = crypter(name)
    for limit in (200, 548, 1232):
        size = chunk_size(c, limit)
        assert 28 + 8 + c.sealed_length(size) <= limit < 28 + 8 + c.sealed_length(size + 1)


def test_sk_length_is_what_the_sk_encoder_makes():
    c = crypter("aes128-sha256")
    sealed = encode_encrypted(HEADER, big_inner(7), c, bytes(c.iv_size))
    assert sk_length(HEADER, big_inner(7), c) == len(sealed)


@pytest.mark.parametrize("name", SUITES)
@pytest.mark.parametrize("offset", [20, 32, 34, 36, -1])
def test_a_changed_header_number_or_body_byte_fails_the_icv(name, offset):
    # Offsets: message ID, SKF Fragment Number, Total Fragments, IV; -1 the ICV.
    data = bytearray(split(name, 548)[1])
    data[offset] ^= 0x01
    msg = decode_message(bytes(data))
    with pytest.raises(IntegrityError):
        open_fragment(bytes(data), msg, crypter(name))


def test_a_limit_with_no_room_for_payloads_is_refused():
    with pytest.raises(ValueError, match="no room"):
        split("aes256gcm16", 60)


def test_max_message_counts_ip_udp_and_the_non_esp_marker():
    assert max_message(1280, ("198.51.100.1", 500), ("198.51.100.2", 500)) == 1252
    assert max_message(1280, ("198.51.100.1", 4500), ("198.51.100.2", 4500)) == 1248
    assert max_message(1280, ("2001:db8::1", 4500), ("2001:db8::2", 4500)) == 1228


@pytest.mark.parametrize(
    ("mode", "peer", "limited"),
    [
        (Fragmentation.YES, True, True),
        (Fragmentation.YES, False, False),
        (Fragmentation.ACCEPT, True, False),
        (Fragmentation.FORCE, False, True),
        (Fragmentation.NO, True, False),
    ],
)
def test_we_fragment_only_when_both_announced_or_forced(mode, peer, limited):
    fragments = Fragments(lambda name: None)
    fragments.peer_announced(peer)
    limit = fragments.limit(FragmentPolicy(mode, 1280), ("192.0.2.1", 500), ("192.0.2.2", 500))
    assert (limit == 1252) if limited else limit is None


# --- reassembly ------------------------------------------------------------------------


class Counts(dict):
    def __call__(self, name: str) -> None:
        self[name] = self.get(name, 0) + 1


def fragment(number: int, total: int, mid: int = 1, first=PayloadType.TSI) -> Message:
    first_inner = first if number == 1 else PayloadType.NONE
    skf = EncryptedFragmentPayload(first_inner, number, total, b"")
    return Message(HEADER.spi_i, HEADER.spi_r, ExchangeType.IKE_AUTH, FLAG_INITIATOR, mid, (skf,))


def add(r: Reassembly, number: int, total: int, mid: int = 1, now: float = 0.0, chunk=None):
    msg = fragment(number, total, mid)
    return r.add(b"raw%d" % number, msg, number, total, chunk or b"%d," % number, now)


def dropped(r: Reassembly, *args, **kw) -> str:
    with pytest.raises(FragmentDropped) as exc:
        add(r, *args, **kw)
    return exc.value.statistic


def test_fragments_in_any_order_complete_once_with_the_first_ones_raw():
    r = Reassembly(Counts())
    assert add(r, 3, 3) is None and add(r, 1, 3) is None
    done = add(r, 2, 3)
    assert done.plaintext == b"1,2,3," and done.raw == b"raw1"
    assert done.first_inner == PayloadType.TSI and r.held == 0


@pytest.mark.parametrize(
    ("number", "total", "reason"),
    [
        (0, 3, "invalid_number"),
        (4, 3, "invalid_number"),
        (0, 0, "invalid_number"),
        (1, MAX_FRAGMENTS + 1, "too_many"),
        (1, 0xFFFF, "too_many"),
    ],
)
def test_impossible_numbers_and_huge_totals_are_dropped_before_anything_is_kept(
    number, total, reason
):
    r = Reassembly(Counts())
    assert dropped(r, number, total) == f"fragments_dropped_{reason}"
    assert r.held == 0


def test_a_repeated_number_is_a_counted_duplicate_and_changes_nothing():
    r = Reassembly(Counts())
    add(r, 1, 3)
    assert dropped(r, 1, 3, chunk=b"other") == "fragments_dropped_duplicate"
    add(r, 2, 3)
    assert add(r, 3, 3).plaintext == b"1,2,3,"


def test_a_smaller_total_is_dropped_and_a_larger_one_starts_over():
    counts = Counts()
    r = Reassembly(counts)
    add(r, 1, 3)
    add(r, 2, 3)
    assert dropped(r, 2, 2) == "fragments_dropped_total_changed"
    assert add(r, 1, 4) is None  # the sender re-fragmented smaller (§2.6)
    assert counts == {"fragments_dropped_superseded": 2} and r.held == 1


def test_a_new_message_id_discards_the_incomplete_older_message():
    counts = Counts()
    r = Reassembly(counts)
    add(r, 1, 2, mid=1)
    assert add(r, 2, 2, mid=2) is None
    assert counts == {"fragments_dropped_superseded": 1}
    assert add(r, 1, 2, mid=2).plaintext == b"1,2,"


def test_an_incomplete_message_expires_and_its_retransmission_completes_whole():
    counts = Counts()
    r = Reassembly(counts)
    add(r, 1, 3, now=0.0)
    add(r, 2, 3, now=0.0)
    later = MAX_SECONDS + 1
    assert add(r, 1, 3, now=later) is None  # not a duplicate: the old collection is gone
    assert counts == {"fragments_dropped_timeout": 2} and r.held == 1
    add(r, 2, 3, now=later)
    assert add(r, 3, 3, now=later).plaintext == b"1,2,3,"


def test_more_bytes_than_the_limit_drop_the_whole_message():
    counts = Counts()
    r = Reassembly(counts)
    half = bytes(MAX_BYTES // 2 + 1)
    add(r, 1, 3, chunk=half)
    assert dropped(r, 2, 3, chunk=half) == "fragments_dropped_too_large"
    assert counts == {"fragments_dropped_too_large": 1} and r.held == 0


def test_a_fragment_after_completion_is_late():
    r = Reassembly(Counts())
    add(r, 1, 2)
    add(r, 2, 2)
    with pytest.raises(FragmentDropped, match="fragment of IKE_AUTH 1") as exc:
        late_fragment(fragment(2, 2))
    assert exc.value.statistic == "fragments_dropped_late"
    late_fragment(HEADER)  # not a fragment: nothing to say


def test_many_hostile_fragments_never_raise_anything_else_and_hold_little():
    rng = random.Random(3)
    r = Reassembly(Counts())
    for _ in range(5000):
        number, total = rng.choice((0, 1, 2, 255, 256, 0xFFFF)), rng.choice((0, 1, 2, 3, 255))
        try:
            add(r, number, total, mid=rng.randrange(3), now=rng.random() * 100)
        except FragmentDropped:
            pass
        assert r.held <= MAX_FRAGMENTS


@pytest.mark.parametrize(
    ("exchange", "mode", "reason"),
    [
        (ExchangeType.IKE_SA_INIT, Fragmentation.YES, "ike_sa_init"),
        (ExchangeType.IKE_AUTH, Fragmentation.NO, "not_negotiated"),
    ],
)
def test_fragments_never_used_are_dropped_before_any_decryption(exchange, mode, reason):
    def never(raw, msg):
        raise AssertionError("decrypted a fragment that is never used")

    msg = Message(HEADER.spi_i, HEADER.spi_r, exchange, FLAG_INITIATOR, 0, fragment(1, 2).payloads)
    fragments = Fragments(Counts())
    with pytest.raises(FragmentDropped) as exc:
        fragments.open(b"", msg, never, FragmentPolicy(mode, 1280), 0.0)
    assert exc.value.statistic == f"fragments_dropped_{reason}" and fragments.held == 0
