"""The injected random source (DESIGN.md §3.1): tests pass a seeded ``random.Random``."""

from __future__ import annotations

from typing import Protocol


class Rng(Protocol):
    def randbytes(self, n: int) -> bytes: ...


def fraction(rng: Rng) -> float:
    """A random fraction in [0, 1) for jitter."""
    return int.from_bytes(rng.randbytes(2), "big") / 0x10000
