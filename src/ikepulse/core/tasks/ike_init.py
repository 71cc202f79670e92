"""IKE_SA_INIT: proposals, key exchange, nonces, COOKIE, INVALID_KE_PAYLOAD (RFC 7296 §1.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.dh import KeyExchange, key_exchange_for
from ...crypto.errors import CryptoError
from ...wire.enums import DhId, NotifyType
from ...wire.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ...wire.sa import Proposal, SaPayload
from ..errors import InvalidKePayload, InvalidSyntax, NoProposalChosen
from ..negotiate import accept_chosen, select, to_wire
from ..state import IkeState
from ..task import Inbound, Status, Task
from .key_exchange import NONCE_SIZE, check_nonce, group_asked_for

if TYPE_CHECKING:
    from ..hosts import TaskHost

MAX_COOKIE_ROUNDS = 3
MAX_KE_ROUNDS = 2


class IkeInit(Task):
    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.cookie: bytes | None = None
        self.ke: KeyExchange | None = None
        self.nonce = sa.rng.randbytes(NONCE_SIZE)
        self.chosen_sa: SaPayload | None = None
        self.rounds = 0
        self.group: DhId | None = None
        if initiator:
            self.group = sa.connection.proposals[0].dh[0]

    def _key_exchange(self) -> KeyExchange:
        if self.ke is None or self.ke.group != self.group:
            self.ke = key_exchange_for(self.group, self.sa.rng)
        return self.ke

    def build(self, out: list[Payload]) -> None:
        if self.initiator:
            if self.cookie is not None:
                out.append(NotifyPayload(NotifyType.COOKIE, self.cookie))
            out.append(SaPayload(to_wire(self.sa.connection.proposals)))
        else:
            out.append(self.chosen_sa)
        ke = self._key_exchange()
        out.append(KePayload(ke.group, ke.public_key))
        out.append(NoncePayload(self.nonce))

    def process(self, msg: Inbound) -> Status:
        self.sa.state_to(IkeState.CONNECTING)
        if self.initiator:
            return self._process_response(msg)
        self._process_request(msg)
        return Status.DONE

    def _process_request(self, msg: Inbound) -> None:
        sa = self.sa
        nonce = check_nonce(msg.first(NoncePayload))
        last_error: NoProposalChosen | None = None
        for connection in sa.candidates:
            try:
                offered, suite = select(connection.proposals, msg.first(SaPayload).proposals)
            except NoProposalChosen as exc:
                last_error = exc
                continue
            sa.select_connection(connection)
            break
        else:
            raise last_error or NoProposalChosen("no connection for this peer")
        ke_payload = msg.first(KePayload)
        if ke_payload.group != suite.dh:
            raise InvalidKePayload(
                f"peer sent KE for {ke_payload.group.name}, we want {suite.dh.name}",
                int(suite.dh).to_bytes(2, "big"),
            )
        self.group = suite.dh
        self.chosen_sa = SaPayload(
            (Proposal(offered.number, offered.protocol, b"", suite.transforms()),)
        )
        self._derive(suite, ke_payload, nonce_i=nonce, nonce_r=self.nonce)

    def _process_response(self, msg: Inbound) -> Status:
        sa = self.sa
        cookie = msg.notify(NotifyType.COOKIE)
        if cookie is not None and self.rounds < MAX_COOKIE_ROUNDS:
            self.rounds += 1
            self.cookie = cookie.data
            return Status.NEED_MORE
        wanted = group_asked_for(msg, sa.connection.proposals, self.ke)
        if wanted is not None and self.rounds < MAX_KE_ROUNDS:
            self.rounds += 1
            self.group = wanted
            return Status.NEED_MORE
        msg.raise_error_notify("IKE_SA_INIT")
        _, suite = accept_chosen(sa.connection.proposals, msg.first(SaPayload).proposals)
        ke_payload = msg.first(KePayload)
        if ke_payload.group != self.group or suite.dh != self.group:
            raise InvalidSyntax(f"responder answered with KE {ke_payload.group.name}")
        sa.set_responder_spi(msg.message.spi_r)
        nonce = check_nonce(msg.first(NoncePayload))
        self._derive(suite, ke_payload, nonce_i=self.nonce, nonce_r=nonce)
        return Status.DONE

    def _derive(self, suite, ke_payload: KePayload, nonce_i: bytes, nonce_r: bytes) -> None:
        try:
            shared = self._key_exchange().shared_secret(ke_payload.data)
        except CryptoError as exc:
            raise InvalidSyntax(f"invalid {ke_payload.group.name} public value: {exc}") from exc
        self.sa.derive_keys(suite, shared, (nonce_i, nonce_r))
