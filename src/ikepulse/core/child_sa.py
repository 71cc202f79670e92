"""A CHILD SA: one pair of unidirectional ESP SAs negotiated through an IKE SA (§1.3, §2.17)."""

from __future__ import annotations

from dataclasses import dataclass

from ..crypto.keys import ChildKeys
from ..wire.traffic_selectors import TrafficSelector
from .connection import ChildConfig, Mode
from .negotiate import Suite


@dataclass(frozen=True, slots=True)
class ChildSa:
    """An installed CHILD SA. ``spi_in`` is ours (the peer sends with it), ``spi_out`` theirs."""

    name: str
    spi_in: bytes
    spi_out: bytes
    suite: Suite
    mode: Mode
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    keys: ChildKeys
    installed_at: float
    vnet: bool = False
    """Both peers said IKEPULSE_ESP_VNET: super-packets travel whole (Next Header 253)."""

    @property
    def carries(self) -> tuple:
        """What it carries: the child and its selectors. Two with the same duplicate each
        other (a rekey, a reauthentication, a collision)."""
        return self.name, self.local_ts, self.remote_ts


@dataclass(slots=True)
class ChildLimits:
    """When a CHILD SA is rekeyed and when it is closed (§2.8): by time (monotonic clock)
    and by the bytes or packets the busier SA of the pair processed. None means never."""

    rekey_at: float | None = None
    expires_at: float | None = None
    rekey_bytes: float | None = None
    life_bytes: float | None = None
    rekey_packets: float | None = None
    life_packets: float | None = None

    @classmethod
    def for_config(cls, config: ChildConfig, now: float, fraction: float) -> ChildLimits:
        """The limits of a CHILD SA installed ``now``; ``fraction`` in [0, 1) draws the
        random part of each rekey limit."""
        rekey_after, life = config.time_limits(fraction)
        return cls(
            None if rekey_after is None else now + rekey_after,
            None if life is None else now + life,
            *config.byte_limits(fraction),
            *config.packet_limits(fraction),
        )

    def rekeyed(self) -> None:
        """A successor exists: only the hard limits still apply."""
        self.rekey_at = self.rekey_bytes = self.rekey_packets = None

    def volume(self, octets: int, packets: int) -> str | None:
        """ "life" or "rekey" when a byte or packet limit is reached, else None."""
        for kind, by_bytes, by_packets in (
            ("life", self.life_bytes, self.life_packets),
            ("rekey", self.rekey_bytes, self.rekey_packets),
        ):
            if (by_bytes is not None and octets >= by_bytes) or (
                by_packets is not None and packets >= by_packets
            ):
                return kind
        return None
