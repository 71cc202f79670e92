"""Bounded byte reader and length-prefixing writer used by every payload codec."""

from __future__ import annotations

import struct


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
        pos = self._pos  # integers straight from the view: no bytes object per field
        if pos + 1 > self._end:
            return self.bytes(1, what)[0]  # raises
        self._pos = pos + 1
        return self._data[pos]

    def u16(self, what: str = "field") -> int:
        pos = self._pos
        if pos + 2 > self._end:
            return int.from_bytes(self.bytes(2, what), "big")  # raises
        self._pos = pos + 2
        return int.from_bytes(self._data[pos : pos + 2], "big")

    def u32(self, what: str = "field") -> int:
        pos = self._pos
        if pos + 4 > self._end:
            return int.from_bytes(self.bytes(4, what), "big")  # raises
        self._pos = pos + 4
        return int.from_bytes(self._data[pos : pos + 4], "big")

    def fields(self, layout: struct.Struct, what: str = "fields") -> tuple:
        """The next ``layout.size`` bytes unpacked with ``layout`` (several fields at once)."""
        pos = self._pos
        if pos + layout.size > self._end:
            self.bytes(layout.size, what)  # raises
        self._pos = pos + layout.size
        return layout.unpack_from(self._data, pos)

    def restrict(self, n: int, what: str = "payload body") -> _Restricted:
        """Limit reads to the next ``n`` bytes (``with``); the body must be consumed exactly."""
        if n < 0 or self._pos + n > self._end:
            raise self.fail(f"{what} of {n} bytes overruns the {self.remaining} bytes left")
        restricted = _Restricted(self, self._end, what)
        self._end = self._pos + n
        return restricted


class _Restricted:
    """``Reader.restrict``'s context (a class: a generator per payload costs more)."""

    __slots__ = ("_reader", "_outer_end", "_what")

    def __init__(self, reader: Reader, outer_end: int, what: str) -> None:
        self._reader, self._outer_end, self._what = reader, outer_end, what

    def __enter__(self) -> Reader:
        return self._reader

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return
        r = self._reader
        if r._pos != r._end:
            raise r.fail(f"{r._end - r._pos} unparsed bytes at the end of {self._what}")
        r._end = self._outer_end


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

    def block(self, size: int, header: int = 0) -> _Block:
        """Write a ``size``-byte length placeholder, then fill it with the body length.

        ``header`` is how many header bytes the length also counts (IKEv2 generic payload
        and substructure lengths include their 4-byte header).
        """
        at = len(self._buf)
        self._buf += bytes(size)
        return _Block(self, at, size, header)


class _Block:
    """``Writer.block``'s context: back-fills the length on a clean exit."""

    __slots__ = ("_writer", "_at", "_size", "_header")

    def __init__(self, writer: Writer, at: int, size: int, header: int) -> None:
        self._writer, self._at, self._size, self._header = writer, at, size, header

    def __enter__(self) -> Writer:
        return self._writer

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return
        buf, at, size = self._writer._buf, self._at, self._size
        length = len(buf) - at - size + self._header
        if length >= 1 << (8 * size):
            raise ValueError(f"block of {length} bytes does not fit a {size}-byte length")
        buf[at : at + size] = length.to_bytes(size, "big")
