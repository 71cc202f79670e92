"""Bounded byte reader and length-prefixing writer used by every payload codec."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DecodeError(ValueError):
    """The only error decoding untrusted bytes may raise; names the offset of the problem."""

    def __init__(self, offset: int, what: str) -> None:
        super().__init__(f"offset {offset}: {what}")
        self.offset = offset
        self.what = what


class Reader:
    """Reads big-endian fields from a buffer; never reads past the current limit."""

    __slots__ = ("_data", "_pos", "_end")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def fail(self, what: str) -> DecodeError:
        return DecodeError(self._pos, what)

    def bytes(self, n: int, what: str = "field") -> bytes:
        if n < 0 or self._pos + n > self._end:
            raise self.fail(f"{what} needs {n} bytes, only {self.remaining} left")
        value = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return value

    def rest(self) -> bytes:
        return self.bytes(self.remaining)

    def u8(self, what: str = "field") -> int:
        return self.bytes(1, what)[0]

    def u16(self, what: str = "field") -> int:
        return int.from_bytes(self.bytes(2, what), "big")

    def u32(self, what: str = "field") -> int:
        return int.from_bytes(self.bytes(4, what), "big")

    @contextmanager
    def restrict(self, n: int, what: str = "payload body") -> Iterator[Reader]:
        """Limit reads to the next ``n`` bytes; the body must be consumed exactly."""
        if n < 0 or self._pos + n > self._end:
            raise self.fail(f"{what} of {n} bytes overruns the {self.remaining} bytes left")
        outer_end, self._end = self._end, self._pos + n
        yield self
        if self._pos != self._end:
            raise self.fail(f"{self._end - self._pos} unparsed bytes at the end of {what}")
        self._end = outer_end


class Writer:
    """Appends big-endian fields; ``block`` back-fills a length prefix."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def bytes(self, data: bytes) -> None:
        self._buf += data

    def u8(self, value: int) -> None:
        self._buf.append(value)

    def u16(self, value: int) -> None:
        self._buf += value.to_bytes(2, "big")

    def u32(self, value: int) -> None:
        self._buf += value.to_bytes(4, "big")

    def patch_u16(self, at: int, value: int) -> None:
        self._buf[at : at + 2] = value.to_bytes(2, "big")

    @contextmanager
    def block(self, size: int, header: int = 0) -> Iterator[Writer]:
        """Write a ``size``-byte length placeholder, then fill it with the body length.

        ``header`` is how many header bytes the length also counts (IKEv2 generic payload
        and substructure lengths include their 4-byte header).
        """
        at = len(self._buf)
        self._buf += bytes(size)
        yield self
        length = len(self._buf) - at - size + header
        if length >= 1 << (8 * size):
            raise ValueError(f"block of {length} bytes does not fit a {size}-byte length")
        self._buf[at : at + size] = length.to_bytes(size, "big")
