"""Encrypted Fragment (SKF) payloads: splitting a protected message and opening one
fragment (RFC 7383 §2.5).

The inner payload chain that would go into one SK payload is cut into chunks; each chunk
is sealed on its own in an SKF payload whose header (with Fragment Number and Total
Fragments) is part of the associated data, exactly as the SK header is for SK (§2.5).
Unprotected payloads, if any, travel in the first fragment only; its SKF Next Payload
names the first inner payload, every other fragment's is 0.
"""

from __future__ import annotations

from collections.abc import Callable

from .buffer import DecodeError, Writer
from .enums import PayloadType
from .message import HEADER_SIZE, Message, SkCrypter, encode_payloads, push_chain, push_header
from .payloads import EncryptedFragmentPayload, Payload

SKF_HEADER_SIZE = 8
"""Generic payload header plus Fragment Number and Total Fragments (§2.5)."""
MAX_TOTAL = 0xFFFF


def sk_length(msg: Message, inner: list[Payload] | tuple[Payload, ...], crypter) -> int:
    """Octets of ``msg`` sealed in one SK payload: what ``encode_encrypted`` would make."""
    return sealed_size(msg, len(encode_payloads(inner)), crypter)


def sealed_size(msg: Message, plaintext_len: int, crypter) -> int:
    """``sk_length`` for inner payloads already encoded (``plaintext_len`` octets)."""
    outer = len(encode_payloads(msg.payloads)) if msg.payloads else 0
    return HEADER_SIZE + outer + 4 + crypter.sealed_length(plaintext_len)


def chunk_size(crypter: SkCrypter, max_message: int, outer_len: int = 0) -> int:
    """The most plaintext octets one fragment carries within ``max_message`` octets of IKE
    message (0 if not even one fits)."""
    fixed = HEADER_SIZE + outer_len + SKF_HEADER_SIZE
    size = max_message - fixed  # sealed_length steps by whole blocks: count down to it
    while size > 0 and fixed + crypter.sealed_length(size) > max_message:
        size -= 1
    return max(size, 0)


def seal_fragments(
    msg: Message,
    inner: list[Payload] | tuple[Payload, ...],
    crypter: SkCrypter,
    iv: Callable[[int], bytes],
    max_message: int,
) -> list[bytes]:
    """``msg`` with ``inner`` sealed in SKF payloads, each datagram at most ``max_message``
    octets; ``iv(n)`` draws a fresh IV per fragment. ValueError if that cannot be done."""
    plaintext = encode_payloads(inner)
    first_inner = inner[0].TYPE if inner else PayloadType.NONE
    outer_len = len(encode_payloads(msg.payloads)) if msg.payloads else 0
    size = chunk_size(crypter, max_message, outer_len)
    if size < 1:
        raise ValueError(f"{max_message} octets leave no room for a fragment's payloads")
    chunks = [plaintext[at : at + size] for at in range(0, len(plaintext), size)] or [b""]
    if len(chunks) > MAX_TOTAL:
        raise ValueError(f"{len(chunks)} fragments exceed the {MAX_TOTAL} allowed")
    return [
        _seal_one(msg, chunk, number, len(chunks), first_inner, crypter, iv)
        for number, chunk in enumerate(chunks, 1)
    ]


def _seal_one(msg, chunk, number, total, first_inner, crypter, iv) -> bytes:
    outer = msg.payloads if number == 1 else ()
    body_len = crypter.sealed_length(len(chunk))
    w = Writer()
    push_header(w, msg, outer[0].TYPE if outer else PayloadType.SKF)
    push_chain(w, outer, PayloadType.SKF)
    w.u8(first_inner if number == 1 else PayloadType.NONE)
    w.u8(0)
    w.u16(SKF_HEADER_SIZE + body_len)
    w.u16(number)
    w.u16(total)
    aad = bytearray(w.getvalue())
    aad[24:28] = (len(aad) + body_len).to_bytes(4, "big")
    return bytes(aad) + crypter.seal(bytes(aad), chunk, iv(crypter.iv_size))


def open_fragment(data: bytes, msg: Message, crypter: SkCrypter) -> bytes:
    """Verify and decrypt the SKF payload of ``msg`` (decoded from ``data``): the chunk of
    the inner payload chain it carries. Raises the crypter's error if the ICV does not
    verify (§2.6: such a fragment is never kept)."""
    skf = msg.encrypted
    if not isinstance(skf, EncryptedFragmentPayload):
        raise DecodeError(HEADER_SIZE, "message has no SKF payload")
    body_at = len(data) - len(skf.body)
    return crypter.open(data[:body_at], skf.body)
