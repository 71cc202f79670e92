"""Who gets a responder IKE SA while unauthenticated IKE_SA_INIT requests pour in
(RFC 7296 §2.6, RFC 8019 §4 and §7): a per-source request rate, cookies above a number of
half-open SAs, a per-source and an overall cap on half-open SAs (the oldest evicted when
the overall cap is reached) and an age after which a half-open SA is forgotten.

Half-open: a responder SA that answered IKE_SA_INIT and has not authenticated its peer yet.
Everything here is sans-IO: time comes in as ``now``."""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire.enums import ExchangeType
from ..wire.isakmp_enums import ExchangeV1
from ..wire.message import FLAG_RESPONSE
from .cookies import Cookies, peek
from .errors import Dropped
from .events import Address
from .randomness import Rng

if TYPE_CHECKING:
    from .hosts import TaskHost


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The knobs (declared, with their defaults, in ``config.schema.DaemonSection``)."""

    cookie_threshold: int
    """Half-open SAs at which IKE_SA_INIT without a valid cookie gets a COOKIE (§2.6)."""
    half_open_limit: int
    """Half-open SAs at most; a new one evicts the oldest (RFC 8019 §4)."""
    half_open_per_source: int
    """Half-open SAs from one source address at most; more are dropped."""
    half_open_timeout: float
    """Seconds a half-open SA waits for IKE_AUTH before it is forgotten."""
    init_rate: float
    """IKE_SA_INIT requests per second from one source address (token bucket)..."""
    init_burst: int
    """...with this many at once."""
    cookie_lifetime: float
    """Seconds between cookie secret changes."""
    cookie_grace: float
    """Seconds the previous cookie secret is still accepted after a change."""


DEFAULT_POLICY = AdmissionPolicy(10, 1000, 5, 30.0, 10.0, 20, 300.0, 30.0)
"""For tests and harnesses that build an ``SaManager`` without a configuration; the daemon
passes the configured policy (``config.schema`` has the same values as its defaults)."""

MAX_SOURCES = 10_000
"""Source addresses with a token bucket at most: beyond, the least recently seen is
forgotten (a spoofer with more addresses than this gets fresh buckets: cookies stop it)."""


def creates_sa(data: bytes) -> bool:
    """Would this datagram create state (a new responder SA)? Header bytes only: the
    responder SPI / cookie is zero in a first request (RFC 7296 §3.1, RFC 2408 §3.1)."""
    if len(data) < 28 or any(data[8:16]):
        return False
    if data[17] >> 4 == 1:  # IKEv1: Main or Aggressive Mode message 1
        return True
    return data[18] == ExchangeType.IKE_SA_INIT and not data[19] & FLAG_RESPONSE


ROUTINE = frozenset({ExchangeType.INFORMATIONAL, ExchangeV1.INFORMATIONAL})


def routine(data: bytes) -> bool:
    """An INFORMATIONAL exchange (IKEv2, or IKEv1's): an established SA's routine traffic,
    liveness checks above all, which may wait for a batch; not an SA coming up or renewed.
    Header bytes only (the exchange type, RFC 7296 §3.1, RFC 2408 §3.1)."""
    return len(data) >= 28 and data[18] in ROUTINE


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take(now)`` spends one if there is one."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.last = float(burst), now

    def take(self, now: float) -> bool:
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SourceBuckets:
    """One ``TokenBucket`` per source address, at most ``limit`` of them (LRU)."""

    def __init__(self, rate: float, burst: int, limit: int = MAX_SOURCES) -> None:
        self.rate, self.burst, self.limit = rate, burst, limit
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, source: str, now: float) -> bool:
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.limit:
                self._buckets.popitem(last=False)
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(source)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class _Entry:
    sa: TaskHost
    source: str
    since: float


class Admission:
    """The half-open responder SAs of one SA manager and the checks a new one must pass.

    The manager asks ``screen`` before it decodes a request for a new SA and ``admit``
    before it creates a responder SA, reports it with ``opened``
    and reports with ``settled`` when it is authenticated or gone; it abandons, without a
    word to anyone, the SAs ``opened`` evicts and ``expire`` finds too old."""

    def __init__(
        self,
        policy: AdmissionPolicy,
        rng: Rng,
        counters: Counter[str],
        now=0.0,
        known: Callable[[str], bool] = lambda source: False,
        rates: SourceBuckets | None = None,
        cookies: bool = True,
        linger: bool = False,
    ):
        """``known(source)``: a configured peer's address, exempt from the per-source rate
        and half-open caps (a gateway setting up thousands of tunnels with us is not a
        flood; cookies and the overall cap still apply). ``rates``: token buckets shared
        with another ``Admission``; ``cookies`` False: never ``screen`` (IKEv1). ``linger``:
        an evicted SA still counts against its source until it would have expired, so
        that sources at their cap cannot churn the table by evicting each other (without
        cookies, each new SA can cost a DH)."""
        self.policy = policy
        self.known = known
        self.counters = counters
        if cookies:
            self.cookies = Cookies(rng, policy.cookie_lifetime, policy.cookie_grace, now)
        self.rates = rates or SourceBuckets(policy.init_rate, policy.init_burst)
        self._open: OrderedDict[bytes, _Entry] = OrderedDict()
        self._per_source: Counter[str] = Counter()
        self.linger = linger
        self._lingering: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        """Half-open SAs now."""
        return len(self._open)

    def from_source(self, source: str) -> int:
        """Half-open SAs from ``source`` now."""
        return self._per_source[source]

    def screen(self, data: bytes, src: Address, now: float) -> bytes | None:
        """Before an IKE_SA_INIT request for a new SA is decoded: raises ``Dropped`` over
        the source's rate; the COOKIE answer to send if one is needed and the request has
        no valid one (§2.6: checked cheaply, without state); None to go on."""
        self.rate(src, "IKE_SA_INIT", now)
        if len(self._open) < self.policy.cookie_threshold:
            return None
        peeked = peek(data)
        if peeked is None:
            return None  # the decoder says what is wrong
        cookie, nonce = peeked
        spi_i = data[:8]
        if cookie is not None and self.cookies.check(cookie, nonce, spi_i, src, now):
            return None
        self.counters["cookies_sent"] += 1
        return self.cookies.answer(nonce, spi_i, src, now)

    def rate(self, src: Address, what: str, now: float) -> None:
        """Raises ``Dropped`` if a request for a new SA from ``src`` is over its rate."""
        if not self.known(src[0]) and not self.rates.take(src[0], now):
            raise Dropped("init_rate_limited", f"{what} from {src[0]} over its rate")

    def admit(self, src: Address, now: float = 0.0) -> None:
        """Raises ``Dropped`` if ``src`` has as many half-open SAs as it may (evicted ones
        lingering until ``now`` included)."""
        source = src[0]
        while self._lingering and self._lingering[0][0] <= now:
            self._forget_source(self._lingering.popleft()[1])
        if self._per_source[source] >= self.policy.half_open_per_source and not self.known(source):
            raise Dropped("half_open_per_source", f"{source} has too many half-open SAs")

    def opened(self, sa: TaskHost, now: float) -> list[TaskHost]:
        """``sa`` is half-open from now; the SAs evicted to make room for it (oldest first)."""
        source = sa.remote[0]
        self._open[sa.local_spi] = _Entry(sa, source, now)
        self._per_source[source] += 1
        evicted = []
        while len(self._open) > self.policy.half_open_limit:
            evicted.append(self._pop_oldest(linger=self.linger))
        self.counters["half_open_evicted"] += len(evicted)
        return evicted

    def settled(self, sa: TaskHost) -> None:
        """``sa`` authenticated its peer, or is gone: it no longer counts."""
        entry = self._open.pop(sa.local_spi, None)
        if entry is not None:
            self._forget_source(entry.source)

    def deadline(self) -> float | None:
        """When the oldest half-open SA expires."""
        for entry in self._open.values():
            return entry.since + self.policy.half_open_timeout
        return None

    def expire(self, now: float) -> list[TaskHost]:
        """The half-open SAs that waited ``half_open_timeout`` for IKE_AUTH in vain."""
        expired = []
        timeout = self.policy.half_open_timeout
        while self._open and next(iter(self._open.values())).since + timeout <= now:
            expired.append(self._pop_oldest())
        self.counters["half_open_expired"] += len(expired)
        return expired

    def _pop_oldest(self, linger: bool = False) -> TaskHost:
        _, entry = self._open.popitem(last=False)
        if linger:
            self._lingering.append((entry.since + self.policy.half_open_timeout, entry.source))
        else:
            self._forget_source(entry.source)
        return entry.sa

    def _forget_source(self, source: str) -> None:
        self._per_source[source] -= 1
        if self._per_source[source] <= 0:
            del self._per_source[source]
