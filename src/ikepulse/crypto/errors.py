"""Errors raised by the crypto layer.

The core translates them once: an IntegrityError on an inbound message is a silent drop
plus a counter (RFC 7296 §2.21.1), an InvalidKeyExchange becomes INVALID_SYNTAX or a
failed exchange, an UnsupportedTransform means a negotiation or configuration bug.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by ``ikepulse.crypto``."""


class UnsupportedTransform(CryptoError):
    """A transform ID (or key length) this implementation does not provide."""


class IntegrityError(CryptoError):
    """ICV or AEAD tag mismatch, or an encrypted body that cannot be well formed."""


class InvalidKeyExchange(CryptoError):
    """A peer's KE public value is unacceptable (length, range, curve, low order)."""


def transform_name(enum: type, value: object) -> str:
    """A transform ID as ``NAME (n)`` for error messages, whatever ``value`` is."""
    try:
        return f"{enum(value).name} ({int(value)})"  # type: ignore[call-overload]
    except (ValueError, TypeError):
        return repr(value)
