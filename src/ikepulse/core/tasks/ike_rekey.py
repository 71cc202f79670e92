"""IKE SA rekey with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.8.2, §2.18, §2.25.2).

initiator                               responder
HDR, SK {SA(new SPIi), Ni, KEi} -->
               <-- HDR, SK {SA(new SPIr), Nr, KEr}
the CHILD SAs move to the new IKE SA; the initiator deletes the old one.

When both peers rekey at once (§2.8.2), each answers the other's request before its own
exchange completes. The new IKE SA made with the lowest of the four nonces is redundant: its
initiator deletes it, and the initiator of the other new IKE SA deletes the old one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.dh import KeyExchange, key_exchange_for
from ...wire.enums import ProtocolId
from ...wire.payloads import KePayload, NoncePayload, Payload
from ...wire.sa import Proposal, SaPayload
from .. import succession
from ..errors import InvalidSyntax, TemporaryFailure
from ..negotiate import Suite, accept_chosen, select, to_wire
from ..randomness import fraction
from ..state import IkeState
from ..task import Inbound, Purpose, Status, Task
from .key_exchange import (
    NONCE_SIZE,
    check_nonce,
    create_child_sa_dh,
    fresh_offer,
    group_asked_for,
)

if TYPE_CHECKING:
    from ..hosts import TaskHost


class IkeRekey(Task):
    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.spi = sa.manager.new_ike_spi()
        self.nonce = sa.rng.randbytes(NONCE_SIZE)
        self.peer_nonce = b""
        self.peer_spi = b""
        self.ke: KeyExchange | None = None
        self.shared = b""
        self.suite: Suite | None = None
        self.proposal: Proposal | None = None
        if initiator:  # the group of the current IKE SA, as strongSwan does
            self.ke = key_exchange_for(sa.sk.suite.dh, sa.rng)
        self.ke_retried = False

    def build(self, out: list[Payload]) -> None:
        if self.initiator:
            out.append(SaPayload(to_wire(self.sa.connection.proposals, spi=self.spi)))
        elif self.build_error(out):
            return
        else:
            transforms = self.suite.transforms()
            out.append(
                SaPayload((Proposal(self.proposal.number, ProtocolId.IKE, self.spi, transforms),))
            )
        out.append(NoncePayload(self.nonce))
        out.append(KePayload(self.ke.group, self.ke.public_key))

    def process(self, msg: Inbound) -> Status:
        with self.contained():
            if self.initiator:
                group = group_asked_for(msg, self.sa.connection.proposals, self.ke)
                if group is not None and not self.ke_retried:
                    self.ke_retried = True  # send the request again with the group asked for
                    self.ke, self.nonce = fresh_offer(group, self.sa.rng)
                    return Status.NEED_MORE
                msg.raise_error_notify("the IKE SA rekey")
                self.proposal, self.suite = accept_chosen(
                    self.sa.connection.proposals, msg.first(SaPayload).proposals
                )
            else:
                self._check_collisions()
                self.proposal, self.suite = select(
                    self.sa.connection.proposals, msg.first(SaPayload).proposals
                )
            self.peer_spi = self.proposal.spi
            if len(self.peer_spi) != 8 or not any(self.peer_spi):
                raise InvalidSyntax("IKE SA rekey without a valid new SPI")
            self.peer_nonce = check_nonce(msg.first(NoncePayload))
            self.ke, self.shared = create_child_sa_dh(
                self.ke,
                self.suite.dh,
                msg.first(KePayload),
                self.initiator,
                self.sa.rng,
                "IKE SA rekey",
            )
        return Status.DONE

    def _check_collisions(self) -> None:
        """§2.25.2: not while we close the IKE SA or work on one of its CHILD SAs."""
        if self.sa.state is not IkeState.ESTABLISHED:
            raise TemporaryFailure("the IKE SA is being deleted")
        if self.sa.in_flight(Purpose.CREATE_CHILD, Purpose.REKEY_CHILD, Purpose.DELETE_CHILD):
            raise TemporaryFailure("a CHILD SA exchange of ours is in flight")

    def _new_sa(self, now: float) -> TaskHost:
        sa = self.sa
        spi_i, spi_r = (self.spi, self.peer_spi) if self.initiator else (self.peer_spi, self.spi)
        nonce_i, nonce_r = (
            (self.nonce, self.peer_nonce) if self.initiator else (self.peer_nonce, self.nonce)
        )
        new = sa.manager.successor(sa, initiator=self.initiator, spi_i=spi_i, spi_r=spi_r, now=now)
        new.derive_keys(self.suite, self.shared, (nonce_i, nonce_r), rekeyed=sa)
        return new

    def finish(self, now: float) -> None:
        if self.initiator:
            self._finish_initiator(now)
        elif self.error is None:
            self._finish_responder(now)

    def _finish_responder(self, now: float) -> None:
        sa = self.sa
        new = self._new_sa(now)
        if sa.in_flight(Purpose.REKEY_IKE):
            # Our own rekey is in flight: its outcome decides which new IKE SA survives.
            succession.retire(new, now)
            sa.renewal.answered_colliding_rekey(new, min(self.nonce, self.peer_nonce))
            return
        succession.take_over(new, sa, now)
        succession.retire(sa, now)

    def _finish_initiator(self, now: float) -> None:
        sa = self.sa
        theirs, theirs_nonce = sa.renewal.rekey_ended()
        if theirs is not None and theirs.finished:
            theirs = None  # the peer already deleted its redundant IKE SA
        if self.error is not None:
            sa.count("ike_rekeys_failed")
            if theirs is not None:  # only the peer's rekey worked: its SA survives
                succession.take_over(theirs, sa, now)
                succession.retire(sa, now)
                return
            sa.renewal.rekey_refused(now, fraction(sa.rng))
            return
        mine = self._new_sa(now)
        if theirs is not None and min(self.nonce, self.peer_nonce) < theirs_nonce:
            # §2.8.2: ours holds the lowest nonce, so it is redundant; we delete it and the
            # peer, whose IKE SA survives, deletes the old one.
            sa.count("ike_rekey_collisions")
            mine.inherit(sa, now)
            succession.take_over(theirs, sa, now)
            succession.retire(sa, now)
            mine.delete(now)
            return
        succession.take_over(mine, sa, now)
        sa.delete(now)
        if theirs is not None:  # redundant; the peer deletes it
            sa.count("ike_rekey_collisions")
            succession.retire(theirs, now)
