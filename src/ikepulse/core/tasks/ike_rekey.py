"""IKE SA rekey with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18).

initiator                               responder
HDR, SK {SA(new SPIi), Ni, KEi} -->
               <-- HDR, SK {SA(new SPIr), Nr, KEr}
the CHILD SAs move to the new IKE SA; the initiator deletes the old one.
"""

from __future__ import annotations

from ...crypto.dh import KeyExchange, key_exchange_for
from ...wire.enums import ExchangeType, ProtocolId
from ...wire.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ...wire.sa import Proposal, SaPayload
from ..errors import IkeError, InvalidSyntax
from ..negotiate import Suite, accept_chosen, select, to_wire
from ..task import Inbound, Status, Task
from .child_rekey import create_child_sa_dh
from .ike_init import NONCE_SIZE, _check_nonce


class IkeRekey(Task):
    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(self, sa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.spi = sa.manager.new_ike_spi()
        self.nonce = sa.rng.randbytes(NONCE_SIZE)
        self.peer_nonce = b""
        self.peer_spi = b""
        self.ke: KeyExchange | None = None
        self.shared = b""
        self.suite: Suite | None = None
        self.proposal: Proposal | None = None
        self.error: IkeError | None = None
        if initiator:  # the group of the current IKE SA, as strongSwan does
            self.ke = key_exchange_for(sa.suite.dh, sa.rng)

    def build(self, out: list[Payload]) -> None:
        if self.initiator:
            out.append(SaPayload(to_wire(self.sa.connection.proposals, spi=self.spi)))
        elif self.error is not None:
            out.append(NotifyPayload(self.error.notify, self.error.data))
            return
        else:
            transforms = self.suite.transforms()
            out.append(
                SaPayload((Proposal(self.proposal.number, ProtocolId.IKE, self.spi, transforms),))
            )
        out.append(NoncePayload(self.nonce))
        out.append(KePayload(self.ke.group, self.ke.public_key))

    def process(self, msg: Inbound) -> Status:
        try:
            if self.initiator:
                msg.raise_error_notify("the IKE SA rekey")
                self.proposal, self.suite = accept_chosen(
                    self.sa.connection.proposals, msg.first(SaPayload).proposals
                )
            else:
                self.proposal, self.suite = select(
                    self.sa.connection.proposals, msg.first(SaPayload).proposals
                )
            self.peer_spi = self.proposal.spi
            if len(self.peer_spi) != 8 or not any(self.peer_spi):
                raise InvalidSyntax("IKE SA rekey without a valid new SPI")
            self.peer_nonce = _check_nonce(msg.first(NoncePayload))
            self.ke, self.shared = create_child_sa_dh(
                self.ke,
                self.suite.dh,
                msg.first(KePayload),
                self.initiator,
                self.sa.rng,
                "IKE SA rekey",
            )
        except IkeError as exc:
            self.error = exc
        return Status.DONE

    def finish(self, now: float) -> None:
        sa = self.sa
        sa.rekeying_ike = False
        if self.error is not None:
            sa.manager.counters["ike_rekeys_failed"] += 1
            return
        spi_i, spi_r = (self.spi, self.peer_spi) if self.initiator else (self.peer_spi, self.spi)
        nonce_i, nonce_r = (
            (self.nonce, self.peer_nonce) if self.initiator else (self.peer_nonce, self.nonce)
        )
        new = sa.manager.successor(sa, initiator=self.initiator, spi_i=spi_i, spi_r=spi_r, now=now)
        new.derive_keys(self.suite, self.shared, nonce_i, nonce_r, rekeyed=sa)
        new.take_over(sa, now)
        if self.initiator:
            sa.delete(now)
        else:
            sa.retire()
