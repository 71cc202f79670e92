"""Anti-replay window (RFC 4303 §3.4.3, Appendix A2 for ESN)."""

from __future__ import annotations

DEFAULT_WINDOW = 1024


class ReplayWindow:
    """Sliding window over 64-bit sequence numbers; a bitmap as one Python int.

    ``check(seq)`` says whether a packet may be processed (before its ICV is verified);
    ``accept(seq)`` records it once the ICV verified (§3.4.3: update only after integrity).
    """

    __slots__ = ("size", "top", "_bits")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        self.size = size
        self.top = 0  # highest sequence number accepted so far
        self._bits = 0  # bit i set: top - i was received

    def check(self, seq: int) -> bool:
        if seq == 0:
            return False
        if seq > self.top:
            return True
        offset = self.top - seq
        return offset < self.size and not (self._bits >> offset) & 1

    def accept(self, seq: int) -> None:
        if seq > self.top:
            shift = seq - self.top
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1)
            self.top = seq
        else:
            self._bits |= 1 << (self.top - seq)

    @staticmethod
    def infer_esn(low32: int, top: int, size: int) -> int:
        """The full 64-bit number for a received low 32 bits (RFC 4303 Appendix A2.2)."""
        top_low, top_high = top & 0xFFFFFFFF, top >> 32
        bottom = (top - size + 1) & 0xFFFFFFFF
        if top_low >= size - 1:  # window within one subspace
            high = top_high + 1 if low32 < bottom else top_high
        else:  # window spans two subspaces
            high = top_high - 1 if low32 >= bottom and top_high > 0 else top_high
        return (high << 32) | low32
