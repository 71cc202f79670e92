"""The SA manager's one door for unauthenticated requests for a new IKE SA, both versions:
the admission checks (``core.admission``) and the half-open responder SAs they count, found
again by (initiator SPI, source) while they wait, abandoned when evicted or expired.

IKEv2 (RFC 7296 §2.6, RFC 8019): per-source rate, cookies, per-source and overall caps.
IKEv1 (RFC 2408, RFC 2409) has no cookie exchange (``ikev1.intake``) but gets the rest of
the same policy, from the same per-source token buckets, before any DH work."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..wire.message import Message
from .admission import Admission, AdmissionPolicy
from .errors import Dropped
from .events import Address
from .ike_sa import IkeSa
from .randomness import Rng
from .state import IkeState

if TYPE_CHECKING:
    from .hosts import SaRegistry, TaskHost

HALF_OPEN_V1 = 1000
"""IKEv1 SAs being set up at once, at most; a new one evicts the oldest (as RFC 8019 §4
does for IKEv2, so that a flood cannot lock legitimate peers out until it times out)."""


class Gate:
    """Admission and the half-open responder SAs of one SA manager.

    The manager asks ``screen`` (IKEv2, before decoding) and ``responder`` for an IKE_SA_INIT
    request; the IKEv1 intake asks ``admit_v1`` before it creates a responder SA for MM1 or
    AM1 and reports it with ``opened_v1``. The manager reports in ``settled`` the SAs that
    authenticated or went away, and calls ``expire`` at ``deadline``."""

    def __init__(
        self,
        manager: SaRegistry,
        policy: AdmissionPolicy,
        rng: Rng,
        counters: Counter[str],
        known: Callable[[str], bool],
    ) -> None:
        self.manager = manager
        self.counters = counters
        self.v2 = Admission(policy, rng, counters, known=known)
        """Cookies, rates and caps for half-open IKEv2 responder SAs (RFC 7296 §2.6)."""
        v1_policy = replace(policy, half_open_limit=HALF_OPEN_V1)
        self.v1 = Admission(
            v1_policy, rng, counters, known=known, rates=self.v2.rates, cookies=False, linger=True
        )
        """The same for IKEv1, less cookies; one token bucket per source for both versions.
        IKEv1 SAs time out on their own (``isakmp_sa.HALF_OPEN_TIMEOUT``); an evicted one
        counts against its source until then (``linger``): else sources at their cap would
        evict each other at the rate of their buckets, each new SA an Aggressive Mode DH."""
        self._half_open: dict[tuple[int, bytes, Address], TaskHost] = {}
        """(IKE version, initiator SPI or cookie, source) -> the responder SA it set up."""
        self._keys: dict[TaskHost, tuple[int, bytes, Address]] = {}

    def half_open(self, version: int, spi_i: bytes, src: Address) -> TaskHost | None:
        """The responder SA waiting for ``src`` to authenticate, set up by ``spi_i``."""
        return self._half_open.get((version, spi_i, src))

    def screen(self, data: bytes, src: Address, dst: Address, now: float) -> bool:
        """An IKE_SA_INIT request for a new IKE SA answered with a COOKIE, or dropped (and
        counted) over its source's rate, before it is decoded (§2.6); False: go on."""
        if (2, data[:8], src) in self._half_open:
            return False  # a retransmission, answered from the SA's cache
        try:
            answer = self.v2.screen(data, src, now)
        except Dropped as drop:
            self.counters[drop.statistic] += 1
            return True
        if answer is not None:
            self.manager.queue_datagram(answer, dst, src)
        return answer is not None

    def responder(self, msg: Message, src: Address, dst: Address, now: float) -> TaskHost:
        """The responder SA for IKE_SA_INIT request ``msg``: the half-open one it repeats,
        or a new one if a connection accepts ``src`` and ``src`` may have one more."""
        if not msg.is_initiator or any(msg.spi_r):
            raise Dropped("malformed", "IKE_SA_INIT request with a responder SPI or no I flag")
        existing = self._half_open.get((2, msg.spi_i, src))
        if existing is not None:
            return existing
        manager = self.manager
        candidates = manager.matching(src[0], dst[0], 2)
        if not candidates:
            raise Dropped("no_connection", f"no IKEv2 connection accepts {src[0]}")
        self.v2.admit(src, now)
        sa = IkeSa(
            manager, initiator=False, spi_i=msg.spi_i, spi_r=manager.new_ike_spi(),
            local=dst, remote=src, candidates=candidates, now=now,
        )  # fmt: skip
        manager.sas[sa.local_spi] = sa
        self._opened(sa, (2, msg.spi_i, src))
        self._abandon(self.v2.opened(sa, now))
        return sa

    def admit_v1(self, src: Address, now: float) -> None:
        """Raises ``Dropped`` over ``src``'s rate or its half-open IKEv1 SAs (MM1/AM1):
        asked before the message is decoded."""
        self.v1.rate(src, "IKEv1 phase 1", now)
        self.v1.admit(src, now)

    def opened_v1(self, sa: TaskHost, icookie: bytes, src: Address, now: float) -> None:
        """``sa`` answers an MM1 or AM1 from now: past the overall cap the oldest IKEv1 SA
        being set up is abandoned."""
        self._opened(sa, (1, icookie, src))
        self._abandon(self.v1.opened(sa, now))

    def _opened(self, sa: TaskHost, key: tuple[int, bytes, Address]) -> None:
        self._half_open[key] = sa
        self._keys[sa] = key

    def settled(self, sa: TaskHost) -> None:
        """``sa`` authenticated its peer or is gone: no longer half-open."""
        self._half_open.pop(self._keys.pop(sa, None), None)
        self.v2.settled(sa)
        self.v1.settled(sa)

    def deadline(self) -> float | None:
        return self.v2.deadline()

    def expire(self, now: float) -> None:
        """Abandon the IKEv2 SAs that waited ``half_open_timeout`` for IKE_AUTH in vain."""
        self._abandon(self.v2.expire(now))

    def _abandon(self, sas: list[TaskHost]) -> None:
        """Forget half-open SAs: unauthenticated, so no event and no word to the peer
        (RFC 8019 §4)."""
        sas_table = self.manager.sas
        for sa in sas:
            if sa.state is not IkeState.CREATED and sa.state is not IkeState.CONNECTING:
                continue  # authenticated meanwhile (never abandoned)
            sa.tasks.abort()
            sa.state_to(IkeState.FAILED)
            if sas_table.get(sa.local_spi) is sa:
                del sas_table[sa.local_spi]
            self._half_open.pop(self._keys.pop(sa, None), None)
