"""The little DER (X.690 §10) that IKE needs outside certificates: AlgorithmIdentifiers of
RFC 7427 and the distinguished names of ID_DER_ASN1_DN identities. Reading only what is
there, strictly: definite minimal lengths, nothing left over."""

from __future__ import annotations

from .errors import CryptoError


class DerError(CryptoError):
    """Malformed or unexpected DER."""


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, content, position after it)."""
    if pos + 2 > len(data):
        raise DerError("truncated DER element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise DerError("multi-octet DER tags are not expected here")
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 3 or pos + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or length < 1 << (8 * (count - 1)):
            raise DerError("non-minimal DER length")
        pos += count
    else:
        length = first
    if pos + length > len(data):
        raise DerError("truncated DER element")
    return tag, data[pos : pos + length], pos + length


def elements(content: bytes) -> list[tuple[int, bytes]]:
    """The elements that make up a constructed element's content."""
    out, pos = [], 0
    while pos < len(content):
        tag, value, pos = read(content, pos)
        out.append((tag, value))
    return out


def only(data: bytes, tag: int, what: str) -> bytes:
    """The content of ``data``, which must be exactly one element with ``tag``."""
    got, content, end = read(data)
    if got != tag or end != len(data):
        raise DerError(f"{what} is not one DER element of tag {tag:#x}")
    return content


def oid_text(content: bytes) -> str:
    """An OBJECT IDENTIFIER's content as dotted text."""
    if not content or content[-1] & 0x80:
        raise DerError("malformed OBJECT IDENTIFIER")
    arcs, value = [], 0
    for octet in content:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))
