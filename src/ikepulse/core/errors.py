"""Errors that carry the notify a peer should receive (RFC 7296 §3.10.1).

Raised anywhere below ``IkeSa.receive``; translated once into an error response (for an
authenticated request), a failure event (for a response), or a counted silent drop.
"""

from __future__ import annotations

from ..wire.enums import NotifyType


class IkeError(Exception):
    """A protocol failure; ``notify`` is what we tell the peer, ``data`` its notify data."""

    notify: NotifyType = NotifyType.INVALID_SYNTAX

    def __init__(self, reason: str, data: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


class InvalidSyntax(IkeError):
    notify = NotifyType.INVALID_SYNTAX


class UnsupportedCriticalPayload(IkeError):
    notify = NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD


class NoProposalChosen(IkeError):
    notify = NotifyType.NO_PROPOSAL_CHOSEN


class InvalidKePayload(IkeError):
    """§1.2: ``data`` is the 2-byte group the responder wants."""

    notify = NotifyType.INVALID_KE_PAYLOAD


class AuthenticationFailed(IkeError):
    notify = NotifyType.AUTHENTICATION_FAILED


class TsUnacceptable(IkeError):
    notify = NotifyType.TS_UNACCEPTABLE


class ChildSaNotFound(IkeError):
    notify = NotifyType.CHILD_SA_NOT_FOUND


class NoAdditionalSas(IkeError):
    notify = NotifyType.NO_ADDITIONAL_SAS


class TemporaryFailure(IkeError):
    """§2.25: the request collides with an exchange of ours; the peer retries later."""

    notify = NotifyType.TEMPORARY_FAILURE


class PeerReportedError(IkeError):
    """The peer answered our request with an error notify."""

    def __init__(self, notify: NotifyType, context: str) -> None:
        super().__init__(f"peer answered {context} with {notify.name}")
        self.notify = notify


class Dropped(Exception):
    """A message to drop silently; ``counter`` names the statistic it increments."""

    prefix = "dropped_"

    def __init__(self, counter: str, reason: str) -> None:
        super().__init__(reason)
        self.counter = counter
        self.reason = reason

    @property
    def statistic(self) -> str:
        """The counter's full name: ``prefix`` and ``counter``."""
        return self.prefix + self.counter
