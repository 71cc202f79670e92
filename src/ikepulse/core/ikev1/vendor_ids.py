"""The vendor IDs an ISAKMP SA's phase 1 sends, and what the peer's announce (RFC 3706 §7
DPD, RFC 3947 §3.1 NAT-T)."""

from __future__ import annotations

from ...wire.isakmp import PayloadChain
from ...wire.isakmp_enums import VID_DPD, VID_NATT
from ...wire.isakmp_payloads import VendorIdV1


class PeerFeatures:
    """What the peer's vendor IDs announce."""

    def __init__(self) -> None:
        self.dpd = False
        self.natt = False

    def learn(self, chain: PayloadChain) -> None:
        for vid in chain.all(VendorIdV1):
            self.dpd |= vid.data == VID_DPD
            self.natt |= vid.data == VID_NATT


def our_vids() -> list[VendorIdV1]:
    return [VendorIdV1(VID_NATT), VendorIdV1(VID_DPD)]
