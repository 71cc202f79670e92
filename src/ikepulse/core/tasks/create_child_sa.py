"""CREATE_CHILD_SA for a CHILD SA: a new one, or the rekey of one (RFC 7296 §1.3.1-§1.3.3,
§2.8.1, §2.25.1).

initiator                                 responder
HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr} -->
              <-- HDR, SK {SA, Nr, [KEr], TSi, TSr}
then the initiator deletes the old CHILD SA (INFORMATIONAL, Delete).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.dh import KeyExchange, key_exchange_for
from ...wire.enums import ExchangeType, NotifyType, ProtocolId
from ...wire.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ..children import ChildEntry, ChildPhase
from ..connection import ChildConfig
from ..errors import ChildSaNotFound, InvalidSyntax, TemporaryFailure
from ..state import IkeState
from ..task import Inbound, Purpose, Status
from .child_sa_task import ChildSaTask
from .key_exchange import (
    NONCE_SIZE,
    check_nonce,
    create_child_sa_dh,
    fresh_offer,
    group_asked_for,
)

if TYPE_CHECKING:
    from ..hosts import TaskHost


class CreateChildSa(ChildSaTask):
    exchange = ExchangeType.CREATE_CHILD_SA
    with_dh = True
    """PFS: a DH transform in our ESP proposal means a KE payload in this exchange."""

    def __init__(
        self,
        sa: TaskHost,
        initiator: bool,
        config: ChildConfig | None = None,
        rekey: ChildEntry | None = None,
    ) -> None:
        super().__init__(sa, initiator, config)
        self.rekey = rekey
        self.nonce = sa.rng.randbytes(NONCE_SIZE)
        self.peer_nonce = b""
        self.ke: KeyExchange | None = None
        self.shared = b""
        self.collision = False
        """Responder: we are rekeying the same CHILD SA ourselves (§2.8.1)."""
        self.ke_retried = False
        if initiator and config is not None:
            groups = config.esp_proposals[0].dh
            if groups:
                self.ke = key_exchange_for(groups[0], sa.rng)

    def build(self, out: list[Payload]) -> None:
        if self.initiator and self.rekey is not None:
            out.append(
                NotifyPayload(NotifyType.REKEY_SA, protocol=ProtocolId.ESP, spi=self.rekey.spi_in)
            )
        super().build(out)

    def build_exchange_payloads(self, out: list[Payload]) -> None:
        out.append(NoncePayload(self.nonce))
        if self.ke is not None:
            out.append(KePayload(self.ke.group, self.ke.public_key))

    def process(self, msg: Inbound) -> Status:
        if self.initiator and not self.ke_retried:
            group = group_asked_for(msg, self.config.esp_proposals, self.ke)
            if group is not None:  # send the request again with the group asked for
                self.ke_retried = True
                self.ke, self.nonce = fresh_offer(group, self.sa.rng)
                self.sa.manager.release_esp_spi(self.spi_in)
                return Status.NEED_MORE
        return super().process(msg)

    def candidates(self, msg: Inbound) -> tuple[ChildConfig, ...]:
        sa = self.sa
        if sa.state is not IkeState.ESTABLISHED or sa.in_flight(Purpose.REKEY_IKE):
            raise TemporaryFailure("the IKE SA is being rekeyed or deleted")  # §2.25
        notify = msg.notify(NotifyType.REKEY_SA)
        if notify is None:
            return super().candidates(msg)
        entry = sa.children.by_spi_out(notify.spi)
        if entry is None:
            raise ChildSaNotFound(f"no CHILD SA with SPI {notify.spi.hex()} to rekey")
        if entry.phase is ChildPhase.DELETING:
            raise TemporaryFailure(f"CHILD SA {entry.spi_in.hex()} is being deleted")
        self.rekey = entry
        self.collision = entry.phase is ChildPhase.REKEYING
        return (sa.connection.child(entry.child.name),)

    def key_exchange(self, msg: Inbound) -> None:
        self.peer_nonce = check_nonce(msg.first(NoncePayload))
        group = self.suite.dh
        ke_payload = msg.first(KePayload)
        if group is None:
            if self.initiator and self.ke is not None:
                raise InvalidSyntax("responder dropped the PFS group we proposed")
            return
        self.ke, self.shared = create_child_sa_dh(
            self.ke, group, ke_payload, self.initiator, self.sa.rng, "CREATE_CHILD_SA"
        )

    def keymat_inputs(self) -> tuple[bytes, bytes, bytes]:
        if self.initiator:
            return self.shared, self.nonce, self.peer_nonce
        return self.shared, self.peer_nonce, self.nonce

    def finish(self, now: float) -> None:
        sa = self.sa
        if self.child is None or self.error is not None:
            if self.initiator:
                sa.manager.release_esp_spi(self.spi_in)
                self._failed(now)
            super().finish(now)
            return
        old = self.rekey
        if old is None or not self.initiator:
            sa.children.install(self.child, now, replaces=old, initiated=self.initiator)
            if old is not None and self.collision:
                old.collision_nonces = (self.peer_nonce, self.nonce)
            return
        theirs, old.collision_nonces = old.collision_nonces, None
        if theirs is not None:
            sa.count("child_rekey_collisions")
        if (old.phase is ChildPhase.DELETED and old.deleted_by_peer) or (
            theirs is not None and min(self.nonce, self.peer_nonce) < min(theirs)
        ):
            # The peer deleted the old SA meanwhile: it no longer wants the pair (§2.25.1),
            # or its own rekey won. Or both rekeyed it at once and ours holds the lowest of
            # the four nonces (§2.8.1). Either way ours is redundant: we delete it, never
            # sending on it, and the peer deletes the old one.
            redundant = sa.children.install(self.child, now, initiated=True, outbound=False)
            sa.children.delete(redundant, now)
            return
        sa.children.install(self.child, now, replaces=old, initiated=True)
        sa.children.delete(old, now)

    def _failed(self, now: float) -> None:
        """Our rekey was refused. On CHILD_SA_NOT_FOUND the peer lost the SA, so drop ours
        quietly and create a new one (§2.25); any other refusal (TEMPORARY_FAILURE,
        NO_PROPOSAL_CHOSEN, ...) is retried a little later, until the hard lifetime."""
        sa, old = self.sa, self.rekey
        if old is None:
            return
        lost = self.error is not None and self.error.notify == NotifyType.CHILD_SA_NOT_FOUND
        if lost and old.phase is not ChildPhase.DELETED:
            sa.children.remove(old, by_peer=True)
            sa.children.create(self.config, now)
        else:
            sa.children.rekey_refused(old, now)
