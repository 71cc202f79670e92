"""Cookie secret rotation, token buckets, and the half-open caps of ``core.admission``."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace

import pytest

from ikepulse.config.build import admission_policy
from ikepulse.config.loader import ConfigError, parse_config
from ikepulse.core.admission import (
    DEFAULT_POLICY,
    Admission,
    SourceBuckets,
    TokenBucket,
    creates_sa,
)
from ikepulse.core.cookies import Cookies, peek
from ikepulse.core.errors import Dropped
from ikepulse.wire.enums import ExchangeType, NotifyType
from ikepulse.wire.message import FLAG_INITIATOR, Message, decode_message, encode_message
from ikepulse.wire.payloads import NoncePayload, NotifyPayload

SRC = ("192.0.2.7", 500)


def request(spi: bytes = b"\x01" * 8, cookie: bytes | None = None) -> Message:
    payloads = (NoncePayload(b"n" * 32),)
    if cookie is not None:
        payloads = (NotifyPayload(NotifyType.COOKIE, cookie), *payloads)
    return Message(spi, bytes(8), ExchangeType.IKE_SA_INIT, FLAG_INITIATOR, 0, payloads)


def valid(jar: Cookies, msg: Message, src, now: float) -> bool:
    """As the responder checks: cookie and nonce read from the request's headers (``peek``)."""
    cookie, nonce = peek(encode_message(msg))
    return cookie is not None and jar.check(cookie, nonce, msg.spi_i, src, now)


def cookie_from(jar: Cookies, msg: Message, src, now: float) -> bytes:
    _, nonce = peek(encode_message(msg))
    answer = decode_message(jar.answer(nonce, msg.spi_i, src, now))
    assert answer.exchange == ExchangeType.IKE_SA_INIT and answer.is_response
    return answer.payloads[0].data


def test_the_schema_defaults_are_the_core_defaults():
    assert admission_policy() == DEFAULT_POLICY


def test_the_daemon_section_sets_the_policy():
    settings = parse_config(
        '[daemon]\ncookie_threshold = 0\nhalf_open_timeout = "1m"\ncookie_grace = "10s"\n'
        "ike_sa_init_rate = 2.5\n"
    )
    assert settings.daemon.admission == replace(
        DEFAULT_POLICY, cookie_threshold=0, half_open_timeout=60.0, cookie_grace=10.0,
        init_rate=2.5,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="half_open_limit"):
        parse_config("[daemon]\nhalf_open_limit = 0\n")


# --- cookies (RFC 7296 §2.6) -----------------------------------------------------------------


@pytest.fixture
def jar():
    """A secret every 300 s, the previous one accepted 30 s longer; first secret at t=0."""
    return Cookies(random.Random(1), lifetime=300.0, grace=30.0, now=0.0)


def test_a_cookie_is_accepted_from_its_address_only(jar):
    cookie = cookie_from(jar, request(), SRC, 10.0)
    assert valid(jar, request(cookie=cookie), SRC, 11.0)
    assert not valid(jar, request(cookie=cookie), ("192.0.2.8", 500), 11.0)
    assert not valid(jar, request(spi=b"\x02" * 8, cookie=cookie), SRC, 11.0)
    assert not valid(jar, request(), SRC, 11.0)
    assert not valid(jar, request(cookie=cookie[:-1] + bytes([cookie[-1] ^ 1])), SRC, 11.0)


def test_the_previous_secret_is_accepted_for_the_grace_period_only(jar):
    #   t=290 cookie made with secret 1
    #   t=300 secret 2 takes over; secret 1 accepted until t=330
    old = cookie_from(jar, request(), SRC, 290.0)
    assert valid(jar, request(cookie=old), SRC, 299.0)
    assert valid(jar, request(cookie=old), SRC, 329.0)
    new = cookie_from(jar, request(), SRC, 301.0)
    assert new[:4] != old[:4]  # the version of the secret travels in the cookie
    assert valid(jar, request(cookie=new), SRC, 329.0)
    assert not valid(jar, request(cookie=old), SRC, 330.0)
    assert valid(jar, request(cookie=new), SRC, 330.0)


def test_two_changes_later_a_cookie_is_refused_and_the_schedule_holds(jar):
    #   secret 1 from t=0, 2 from t=300, 3 from t=600
    old = cookie_from(jar, request(), SRC, 10.0)
    middle = cookie_from(jar, request(), SRC, 301.0)
    assert not valid(jar, request(cookie=old), SRC, 601.0)
    assert valid(jar, request(cookie=middle), SRC, 601.0)
    assert not valid(jar, request(cookie=middle), SRC, 630.0)


def test_after_a_lull_the_last_cookie_handed_out_is_stale(jar):
    old = cookie_from(jar, request(), SRC, 10.0)
    assert not valid(jar, request(cookie=old), SRC, 1000.0)
    new = cookie_from(jar, request(), SRC, 1000.0)
    assert valid(jar, request(cookie=new), SRC, 1199.0)  # secret of t=900 lives until 1200
    assert not valid(jar, request(cookie=new), SRC, 1230.0)


def test_a_cookie_of_another_jar_is_refused(jar):
    other = Cookies(random.Random(2), lifetime=300.0, grace=30.0, now=0.0)
    assert not valid(jar, request(cookie=cookie_from(other, request(), SRC, 1.0)), SRC, 1.0)


# --- token buckets ---------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)
    assert bucket.take(0.5)  # 0.5 s at 2/s: one token
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_source_buckets_are_per_address_and_bounded():
    buckets = SourceBuckets(rate=1.0, burst=1, limit=3)
    assert buckets.take("192.0.2.1", 0.0)
    assert not buckets.take("192.0.2.1", 0.0)
    assert buckets.take("192.0.2.2", 0.0)
    for n in range(3, 10):
        buckets.take(f"192.0.2.{n}", 0.0)
    assert len(buckets) == 3


# --- half-open SAs ---------------------------------------------------------------------------


@dataclass
class FakeSa:
    local_spi: bytes
    remote: tuple[str, int]


def make(**overrides) -> tuple[Admission, Counter]:
    counters: Counter[str] = Counter()
    policy = replace(DEFAULT_POLICY, **overrides)
    return Admission(policy, random.Random(3), counters), counters


def open_sa(admission: Admission, n: int, source: str, now: float):
    sa = FakeSa(n.to_bytes(8, "big"), (source, 500))
    return sa, admission.opened(sa, now)


def test_a_full_table_evicts_the_oldest_half_open_sa():
    admission, counters = make(half_open_limit=3, half_open_per_source=10)
    sas = [open_sa(admission, n, f"192.0.2.{n}", float(n))[0] for n in range(3)]
    newest, evicted = open_sa(admission, 3, "192.0.2.3", 3.0)
    assert evicted == [sas[0]]
    assert len(admission) == 3 and counters["half_open_evicted"] == 1
    admission.settled(sas[1])  # authenticated: no longer counts, never evicted
    assert open_sa(admission, 4, "192.0.2.4", 4.0)[1] == []
    assert open_sa(admission, 5, "192.0.2.5", 5.0)[1] == [sas[2]]


def test_per_source_half_open_limit_and_its_release():
    admission, counters = make(half_open_per_source=2, cookie_threshold=100)
    a, _ = open_sa(admission, 1, SRC[0], 0.0)
    open_sa(admission, 2, SRC[0], 0.0)
    with pytest.raises(Dropped) as drop:
        admission.admit(SRC)
    assert drop.value.statistic == "dropped_half_open_per_source"
    admission.admit(("192.0.2.99", 500))
    admission.settled(a)
    assert admission.from_source(SRC[0]) == 1
    admission.admit(SRC)


def test_per_source_request_rate():
    admission, _ = make(init_rate=1.0, init_burst=2, cookie_threshold=100)
    data = encode_message(request())
    assert admission.screen(data, SRC, 0.0) is None
    assert admission.screen(data, SRC, 0.0) is None
    with pytest.raises(Dropped) as drop:
        admission.screen(data, SRC, 0.0)
    assert drop.value.statistic == "dropped_init_rate_limited"
    assert admission.screen(data, ("192.0.2.99", 500), 0.0) is None
    assert admission.screen(data, SRC, 1.0) is None


def test_cookies_are_asked_for_above_the_threshold_only_and_checked_before_decoding():
    admission, counters = make(cookie_threshold=1)
    assert admission.screen(encode_message(request()), SRC, 0.0) is None
    open_sa(admission, 1, "192.0.2.50", 0.0)
    answer = admission.screen(encode_message(request()), SRC, 0.0)
    assert answer is not None and counters["cookies_sent"] == 1
    cookie = decode_message(answer).payloads[0].data
    assert admission.screen(encode_message(request(cookie=cookie)), SRC, 0.0) is None
    assert valid(admission.cookies, request(cookie=cookie), SRC, 0.0)
    forged = cookie[:-1] + bytes([cookie[-1] ^ 1])
    assert admission.screen(encode_message(request(cookie=forged)), SRC, 0.0) is not None
    assert counters["cookies_sent"] == 2


def test_only_first_requests_create_state():
    first = encode_message(request())
    assert creates_sa(first)
    assert not creates_sa(first[:8] + b"\x02" * 8 + first[16:])  # a responder SPI
    assert not creates_sa(first[:19] + bytes([first[19] | 0x20]) + first[20:])  # response
    assert not creates_sa(first[:18] + bytes([35]) + first[19:])  # IKE_AUTH
    assert not creates_sa(first[:20])


def test_half_open_sas_expire_oldest_first():
    admission, counters = make(half_open_timeout=30.0)
    first, _ = open_sa(admission, 1, "192.0.2.1", 0.0)
    second, _ = open_sa(admission, 2, "192.0.2.2", 10.0)
    assert admission.deadline() == 30.0
    assert admission.expire(29.9) == []
    assert admission.expire(30.0) == [first]
    assert admission.deadline() == 40.0
    assert admission.expire(100.0) == [second]
    assert admission.deadline() is None and counters["half_open_expired"] == 2
    assert admission.from_source("192.0.2.1") == 0


def test_a_configured_peer_is_not_held_to_the_per_source_limits():
    """A gateway that sets up hundreds of tunnels with us at once is not a flood: the
    per-source rate and half-open caps spare addresses a connection names as its peer."""
    counters: Counter[str] = Counter()
    policy = replace(
        DEFAULT_POLICY, half_open_per_source=2, init_rate=1, init_burst=1, cookie_threshold=1000
    )
    admission = Admission(policy, random.Random(3), counters, known=lambda source: source == SRC[0])
    data = encode_message(request())
    for n in range(50):
        assert admission.screen(data, SRC, 0.0) is None
        admission.admit(SRC)
        open_sa(admission, n, SRC[0], 0.0)
    stranger = ("192.0.2.99", 500)
    admission.screen(data, stranger, 0.0)
    with pytest.raises(Dropped):
        admission.screen(data, stranger, 0.0)
