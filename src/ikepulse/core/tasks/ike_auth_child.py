"""The first CHILD SA, piggybacked on IKE_AUTH (RFC 7296 §1.2, §1.3.1, §2.17)."""

from __future__ import annotations

from ...wire.enums import ExchangeType
from .child_sa_task import ChildSaTask


class IkeAuthChild(ChildSaTask):
    """The CHILD SA part of IKE_AUTH: its keys come from the IKE SA's nonces."""

    exchange = ExchangeType.IKE_AUTH
    with_dh = False
    """IKE_AUTH ignores DH transforms of ESP proposals (§1.2)."""
