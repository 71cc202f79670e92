"""IKE_AUTH identities and PSK authentication (RFC 7296 §1.2, §2.15)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from ...crypto.auth import psk_auth, signed_octets
from ...wire.enums import AuthMethod, NotifyType
from ...wire.payloads import AuthPayload, IdiPayload, IdrPayload, NotifyPayload, Payload
from ..connection import ConnectionConfig, Identity
from ..errors import AuthenticationFailed
from ..qcd import qcd_token
from ..task import Inbound, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost


def _identity(payload) -> Identity:
    return Identity(payload.id_type, payload.data)


class IkeAuth(Task):
    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.peer: Identity | None = None
        self.peer_token: bytes | None = None
        self.initial_contact = False
        """Responder: the peer said it holds no other IKE SA with us (§2.4)."""

    def _auth_data(self, connection: ConnectionConfig, id_body: bytes, ours: bool) -> bytes:
        """AUTH over our (``ours``) or the peer's signed octets (§2.15)."""
        sa = self.sa
        i_am_initiator = sa.initiator
        signer_is_initiator = i_am_initiator if ours else not i_am_initiator
        sk = sa.sk
        message = sk.sent_init if ours else sk.received_init
        other_nonce = sk.nonce_r if signer_is_initiator else sk.nonce_i
        sk_p = sk.keys.sk_pi if signer_is_initiator else sk.keys.sk_pr
        octets = signed_octets(message, other_nonce, sk.prf, sk_p, id_body)
        return psk_auth(sk.prf, connection.psk, octets)

    def build(self, out: list[Payload]) -> None:
        sa, connection = self.sa, self.sa.connection
        own_id = (IdiPayload if self.initiator else IdrPayload)(
            connection.local_id.id_type, connection.local_id.data
        )
        out.append(own_id)
        if self.initiator and not sa.manager.holds_other_sa(sa):
            # §2.4: we hold no other IKE SA with this peer, so it should drop any it has.
            out.append(NotifyPayload(NotifyType.INITIAL_CONTACT))
        if self.initiator and connection.remote_id is not None:
            out.append(IdrPayload(connection.remote_id.id_type, connection.remote_id.data))
        auth = self._auth_data(connection, own_id.body, ours=True)
        out.append(AuthPayload(AuthMethod.SHARED_KEY_MIC, auth))
        token = qcd_token(sa.manager.qcd_secret, sa.spi_i, sa.spi_r)
        out.append(NotifyPayload(NotifyType.QUICK_CRASH_DETECTION, token))

    def _verify(self, connection: ConnectionConfig, peer_id, auth: AuthPayload | None) -> None:
        if auth is None or auth.method != AuthMethod.SHARED_KEY_MIC:
            method = "no AUTH payload" if auth is None else f"auth method {auth.method.name}"
            raise AuthenticationFailed(f"{method}; only PSK is configured")
        expected = self._auth_data(connection, peer_id.body, ours=False)
        if not hmac.compare_digest(expected, auth.data):
            raise AuthenticationFailed(
                f"PSK AUTH of {_identity(peer_id)} does not verify (wrong pre-shared key?)"
            )
        self.peer = _identity(peer_id)

    def process(self, msg: Inbound) -> Status:
        if self.initiator:
            if msg.first(AuthPayload) is None:  # errors about the CHILD SA come with AUTH
                msg.raise_error_notify("IKE_AUTH")
            peer_id = msg.first(IdrPayload)
            if peer_id is None:
                raise AuthenticationFailed("IKE_AUTH response without IDr")
            wanted = self.sa.connection.remote_id
            if wanted is not None and _identity(peer_id) != wanted:
                raise AuthenticationFailed(f"peer is {_identity(peer_id)}, expected {wanted}")
            self._verify(self.sa.connection, peer_id, msg.first(AuthPayload))
            self._remember_token(msg)
            return Status.DONE
        peer_id, my_id = msg.first(IdiPayload), msg.first(IdrPayload)
        if peer_id is None:
            raise AuthenticationFailed("IKE_AUTH request without IDi")
        connection = self._select(_identity(peer_id), my_id and _identity(my_id))
        self._verify(connection, peer_id, msg.first(AuthPayload))
        self.sa.select_connection(connection)
        self.initial_contact = msg.notify(NotifyType.INITIAL_CONTACT) is not None
        self._remember_token(msg)
        return Status.DONE

    def _select(self, peer: Identity, me: Identity | None) -> ConnectionConfig:
        """The first candidate whose identities match (§2.15; strongSwan peer config lookup)."""
        for connection in self.sa.candidates:
            if connection.remote_id not in (None, peer):
                continue
            if me is not None and connection.local_id != me:
                continue
            return connection
        raise AuthenticationFailed(f"no connection for peer identity {peer}")

    def _remember_token(self, msg: Inbound) -> None:
        notify = msg.notify(NotifyType.QUICK_CRASH_DETECTION)
        if notify is not None and 16 <= len(notify.data) <= 128:
            self.peer_token = notify.data

    def finish(self, now: float) -> None:
        self.sa.established(
            now, self.sa.connection.local_id, self.peer, self.peer_token, self.initial_contact
        )
