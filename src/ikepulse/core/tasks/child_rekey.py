"""CREATE_CHILD_SA for a CHILD SA: a new one, or the rekey of one (RFC 7296 §1.3.1-§1.3.3).

initiator                                 responder
HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr} -->
              <-- HDR, SK {SA, Nr, [KEr], TSi, TSr}
then the initiator deletes the old CHILD SA (INFORMATIONAL, Delete).
"""

from __future__ import annotations

from ...crypto.dh import KeyExchange, key_exchange_for
from ...crypto.errors import CryptoError
from ...wire.enums import ExchangeType, NotifyType, ProtocolId
from ...wire.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ..child_sa import ChildSa
from ..config import ChildConfig
from ..errors import ChildSaNotFound, InvalidKePayload, InvalidSyntax
from ..task import Inbound
from .child_create import ChildCreate
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
        ke = key_exchange_for(group, rng)
    try:
        return ke, ke.shared_secret(ke_payload.data)
    except CryptoError as exc:
        raise InvalidSyntax(f"invalid {group.name} public value: {exc}") from exc


class CreateChild(ChildCreate):
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

    def candidates(self, msg: Inbound) -> tuple[ChildConfig, ...]:
        notify = msg.notify(NotifyType.REKEY_SA)
        if notify is None:
            return super().candidates(msg)
        for child in self.sa.children:
            if child.spi_out == notify.spi and child.spi_in not in self.sa.deleting_children:
                self.rekey = child
                self.collision = child.spi_in in self.sa.rekeying
                return (self.sa.connection.child(child.name),)
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
        if self.child is None or self.error is not None:
            self.sa.rekey_failed(self.rekey)
            super().finish(now)
            return
        sa = self.sa
        sa.install_child(self.child, now, replaces=self.rekey, initiated=self.initiator)
        if self.rekey is None:
            return
        if not self.initiator:
            if self.collision:
                sa.rekey_collisions[self.rekey.spi_in] = (self.peer_nonce, self.nonce)
            return
        theirs = sa.rekey_collisions.pop(self.rekey.spi_in, None)
        if theirs is not None and min(self.nonce, self.peer_nonce) < min(theirs):
            # §2.8.1: both sides rekeyed it at once; the SA made with the lowest of the four
            # nonces is redundant and its creator (us) deletes it. The peer's exchange
            # survives, so the peer deletes the old CHILD SA.
            sa.delete_child(self.child, now)
            return
        sa.delete_child(self.rekey, now)
