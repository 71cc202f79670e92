"""CREATE_CHILD_SA for a CHILD SA: a new one, or the rekey of one (RFC 7296 §1.3.1-§1.3.3,
§2.8.1, §2.25.1).

initiator                                 responder
HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr} -->
              <-- HDR, SK {SA, Nr, [KEr], TSi, TSr}
then the initiator deletes the old CHILD SA (INFORMATIONAL, Delete).
"""

from __future__ import annotations

from ...crypto.dh import KeyExchange, key_exchange_for
from ...crypto.errors import CryptoError
from ...wire.enums import DhId, ExchangeType, NotifyType, ProtocolId
from ...wire.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ..child_sa import ChildSa
from ..connection import ChildConfig
from ..errors import ChildSaNotFound, InvalidKePayload, InvalidSyntax, TemporaryFailure
from ..state import IkeState
from ..task import Inbound, Status
from .ike_auth_child import IkeAuthChild
from .ike_init import NONCE_SIZE, _check_nonce


def create_child_sa_dh(
    ke: KeyExchange | None, group, ke_payload: KePayload | None, initiator: bool, rng, what: str
) -> tuple[KeyExchange, bytes]:
    """The KE part of a CREATE_CHILD_SA (§1.3): our key exchange and g^ir. A responder asks
    for the group it chose with INVALID_KE_PAYLOAD; an initiator gets what it sent."""
    if ke_payload is None or ke_payload.group != group:
        if initiator:
            raise InvalidSyntax(f"{what} response without KE for {group.name}")
        raise InvalidKePayload(f"{what} wants KE for {group.name}", int(group).to_bytes(2, "big"))
    if ke is None or ke.group != group:
        if initiator:
            raise InvalidSyntax(f"{what} response chose {group.name}, which we sent no KE for")
        ke = key_exchange_for(group, rng)
    try:
        return ke, ke.shared_secret(ke_payload.data)
    except CryptoError as exc:
        raise InvalidSyntax(f"invalid {group.name} public value: {exc}") from exc


def group_asked_for(msg: Inbound, proposals, ke: KeyExchange | None) -> DhId | None:
    """The DH group of an INVALID_KE_PAYLOAD answer (§1.3, §1.2) if we proposed it and
    have not used it yet; the request is then repeated with a KE for that group."""
    notify = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
    if notify is None or len(notify.data) < 2:
        return None
    wanted = int.from_bytes(notify.data[:2], "big")
    offered = {g for p in proposals for g in p.dh}
    if wanted not in offered or (ke is not None and ke.group == wanted):
        return None
    return DhId(wanted)


class CreateChildSa(IkeAuthChild):
    exchange = ExchangeType.CREATE_CHILD_SA
    with_dh = True
    """PFS: a DH transform in our ESP proposal means a KE payload in this exchange."""

    def __init__(
        self,
        sa,
        initiator: bool,
        config: ChildConfig | None = None,
        rekey: ChildSa | None = None,
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
                self.ke = key_exchange_for(group, self.sa.rng)
                self.nonce = self.sa.rng.randbytes(NONCE_SIZE)
                self.sa.manager.release_esp_spi(self.spi_in)
                return Status.NEED_MORE
        return super().process(msg)

    def candidates(self, msg: Inbound) -> tuple[ChildConfig, ...]:
        sa = self.sa
        from .ike_rekey import IkeRekey

        if sa.state is not IkeState.ESTABLISHED or sa.tasks.in_flight(IkeRekey):
            raise TemporaryFailure("the IKE SA is being rekeyed or deleted")  # §2.25
        notify = msg.notify(NotifyType.REKEY_SA)
        if notify is None:
            return super().candidates(msg)
        for child in sa.children:
            if child.spi_out == notify.spi:
                if child.spi_in in sa.deleting_children:
                    raise TemporaryFailure(f"CHILD SA {child.spi_in.hex()} is being deleted")
                self.rekey = child
                self.collision = child.spi_in in sa.rekeying
                return (sa.connection.child(child.name),)
        raise ChildSaNotFound(f"no CHILD SA with SPI {notify.spi.hex()} to rekey")

    def key_exchange(self, msg: Inbound) -> None:
        self.peer_nonce = _check_nonce(msg.first(NoncePayload))
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
            sa.install_child(self.child, now, replaces=old, initiated=self.initiator)
            if old is not None and self.collision:
                sa.rekey_collisions[old.spi_in] = (self.peer_nonce, self.nonce)
            return
        theirs = sa.rekey_collisions.pop(old.spi_in, None)
        if theirs is not None:
            sa.manager.counters["child_rekey_collisions"] += 1
        if old.spi_in in sa.deleted_while_rekeying or (
            theirs is not None and min(self.nonce, self.peer_nonce) < min(theirs)
        ):
            # The peer deleted the old SA meanwhile: it no longer wants the pair (§2.25.1),
            # or its own rekey won. Or both rekeyed it at once and ours holds the lowest of
            # the four nonces (§2.8.1). Either way ours is redundant: we delete it, never
            # sending on it, and the peer deletes the old one.
            sa.deleted_while_rekeying.discard(old.spi_in)
            sa.install_child(self.child, now, initiated=True, outbound=False)
            sa.delete_child(self.child, now)
            return
        sa.install_child(self.child, now, replaces=old, initiated=True)
        sa.delete_child(old, now)

    def _failed(self, now: float) -> None:
        """Our rekey was refused. On CHILD_SA_NOT_FOUND the peer lost the SA, so drop ours
        quietly and create a new one (§2.25); any other refusal (TEMPORARY_FAILURE,
        NO_PROPOSAL_CHOSEN, ...) is retried a little later, until the hard lifetime."""
        sa, old = self.sa, self.rekey
        sa.rekey_failed(old)
        if old is None or self.error is None:
            return
        if self.error.notify == NotifyType.CHILD_SA_NOT_FOUND and old in sa.children:
            sa.remove_child(old, by_peer=True)
            sa.create_child(self.config, now)
        else:
            sa.retry_rekey_child(old, now)
