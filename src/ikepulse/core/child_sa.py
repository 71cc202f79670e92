"""A CHILD SA: one pair of unidirectional ESP SAs negotiated through an IKE SA (§1.3, §2.17)."""

from __future__ import annotations

from dataclasses import dataclass

from ..crypto.keys import ChildKeys
from ..wire.payloads import TrafficSelector
from .config import Mode
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
