"""The small inner payload chain an IKE SA last sealed and last opened, kept with its
encoding: a liveness check behind a NAT carries the same NAT-D notifies each time (RFC 4555
§3.8), so one IKE SA encodes and decodes them once, not once per check.

Only chains up to ``LIMIT`` octets are kept (no IKE_AUTH or CREATE_CHILD_SA is that small),
two per IKE SA. A hit returns exactly what encoding or decoding would: the payloads are
frozen values, and a decoded chain is looked up by its whole plaintext.
"""

from __future__ import annotations

from ..wire.enums import PayloadType
from ..wire.message import decode_payloads, encode_payloads
from ..wire.payloads import Payload

LIMIT = 128
"""Octets of plaintext at most in a kept chain."""


class Repeats:
    __slots__ = ("_sealed", "_opened")

    def __init__(self) -> None:
        self._sealed: tuple[tuple[Payload, ...], bytes] | None = None
        self._opened: tuple[PayloadType, bytes, tuple[Payload, ...]] | None = None

    def encode(self, payloads: list[Payload]) -> bytes:
        """``encode_payloads(payloads)``."""
        if not payloads:
            return b""
        sealed, chain = self._sealed, tuple(payloads)
        if sealed is not None and sealed[0] == chain:
            return sealed[1]
        plaintext = encode_payloads(chain)
        self._sealed = (chain, plaintext) if len(plaintext) <= LIMIT else None
        return plaintext

    def decode(self, plaintext: bytes, first: PayloadType) -> list[Payload]:
        """``decode_payloads(plaintext, first)``; raises DecodeError as it does."""
        if not plaintext:
            return decode_payloads(plaintext, first)
        opened = self._opened
        if opened is not None and opened[1] == plaintext and opened[0] == first:
            return list(opened[2])
        payloads = decode_payloads(plaintext, first)
        self._opened = (first, plaintext, tuple(payloads)) if len(plaintext) <= LIMIT else None
        return payloads
