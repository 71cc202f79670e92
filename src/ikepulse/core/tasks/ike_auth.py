"""IKE_AUTH identities and authentication by PSK or certificate (RFC 7296 §1.2, §2.15)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from cryptography import x509

from ...crypto.auth import psk_auth, signed_octets
from ...wire.enums import AuthMethod, NotifyType
from ...wire.payloads import (
    AuthPayload,
    CertPayload,
    IdiPayload,
    IdrPayload,
    NotifyPayload,
    Payload,
)
from .. import pubkey_auth
from ..connection import ConnectionConfig, Identity
from ..errors import AuthenticationFailed
from ..identities import id_matches, is_pattern
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
        self.peer_cert: x509.Certificate | None = None
        """The peer's end-entity certificate, when it authenticated with one."""
        self.wanted_cas: frozenset[bytes] | None = None
        """The CAs the peer's CERTREQ names (SHA-1 of their keys), None without one."""

    def _octets(self, id_body: bytes, ours: bool) -> bytes:
        """Our (``ours``) or the peer's signed octets (§2.15)."""
        sa = self.sa
        i_am_initiator = sa.initiator
        signer_is_initiator = i_am_initiator if ours else not i_am_initiator
        sk = sa.sk
        message = sk.sent_init if ours else sk.received_init
        other_nonce = sk.nonce_r if signer_is_initiator else sk.nonce_i
        sk_p = sk.keys.sk_pi if signer_is_initiator else sk.keys.sk_pr
        return signed_octets(message, other_nonce, sk.prf, sk_p, id_body)

    def _our_auth(self, connection: ConnectionConfig, id_body: bytes) -> AuthPayload:
        octets = self._octets(id_body, ours=True)
        if connection.local_pubkey is not None:
            return pubkey_auth.sign(self.sa, connection.local_pubkey, octets)
        return AuthPayload(
            AuthMethod.SHARED_KEY_MIC, psk_auth(self.sa.sk.prf, connection.psk, octets)
        )

    def build(self, out: list[Payload]) -> None:
        sa, connection = self.sa, self.sa.connection
        own_id = (IdiPayload if self.initiator else IdrPayload)(
            connection.local_id.id_type, connection.local_id.data
        )
        out.append(own_id)
        if connection.local_pubkey is not None:
            if self.initiator:  # the responder's CERTREQ came in IKE_SA_INIT
                self.wanted_cas = pubkey_auth.requested(pubkey_auth.peer_init_payloads(sa))
            out.extend(pubkey_auth.cert_payloads(connection.local_pubkey, self.wanted_cas))
        if self.initiator and not sa.manager.holds_other_sa(sa):
            # §2.4: we hold no other IKE SA with this peer, so it should drop any it has.
            out.append(NotifyPayload(NotifyType.INITIAL_CONTACT))
        if self.initiator and connection.remote_trust is not None:
            out.append(pubkey_auth.certreq(connection.remote_trust))
        if (
            self.initiator
            and connection.remote_id is not None
            and not is_pattern(connection.remote_id)
        ):
            out.append(IdrPayload(connection.remote_id.id_type, connection.remote_id.data))
        out.append(self._our_auth(connection, own_id.body))
        token = qcd_token(sa.manager.qcd_secret, sa.spi_i, sa.spi_r)
        out.append(NotifyPayload(NotifyType.QUICK_CRASH_DETECTION, token))

    def _verify(self, connection: ConnectionConfig, peer_id, msg: Inbound) -> None:
        auth: AuthPayload | None = msg.first(AuthPayload)
        peer = _identity(peer_id)
        if auth is None:
            raise AuthenticationFailed(f"no AUTH payload from {peer}")
        octets = self._octets(peer_id.body, ours=False)
        if connection.remote_trust is not None:
            self.peer_cert = pubkey_auth.verify(
                self.sa, connection.remote_trust, peer, auth, msg.all(CertPayload), octets, msg.now
            )
            self.peer = peer
            return
        if auth.method != AuthMethod.SHARED_KEY_MIC:
            raise AuthenticationFailed(
                f"{peer} uses auth method {auth.method.name}; this connection uses a PSK"
            )
        expected = psk_auth(self.sa.sk.prf, connection.psk, octets)
        if not hmac.compare_digest(expected, auth.data):
            raise AuthenticationFailed(
                f"PSK AUTH of {peer} does not verify (wrong pre-shared key?)"
            )
        self.peer = peer

    def process(self, msg: Inbound) -> Status:
        if self.initiator:
            if msg.first(AuthPayload) is None:  # errors about the CHILD SA come with AUTH
                msg.raise_error_notify("IKE_AUTH")
            peer_id = msg.first(IdrPayload)
            if peer_id is None:
                raise AuthenticationFailed("IKE_AUTH response without IDr")
            wanted = self.sa.connection.remote_id
            if wanted is not None and not id_matches(wanted, _identity(peer_id)):
                raise AuthenticationFailed(f"peer is {_identity(peer_id)}, expected {wanted}")
            self._verify(self.sa.connection, peer_id, msg)
            self._remember_token(msg)
            return Status.DONE
        peer_id, my_id = msg.first(IdiPayload), msg.first(IdrPayload)
        if peer_id is None:
            raise AuthenticationFailed("IKE_AUTH request without IDi")
        auth = msg.first(AuthPayload)
        pubkey = auth is not None and auth.method != AuthMethod.SHARED_KEY_MIC
        connection = self._select(_identity(peer_id), my_id and _identity(my_id), pubkey)
        self._verify(connection, peer_id, msg)
        self.wanted_cas = pubkey_auth.requested(msg.payloads)
        self.sa.select_connection(connection)
        self.initial_contact = msg.notify(NotifyType.INITIAL_CONTACT) is not None
        self._remember_token(msg)
        return Status.DONE

    def _select(self, peer: Identity, me: Identity | None, pubkey: bool) -> ConnectionConfig:
        """The first candidate whose identities match, one whose remote auth class (PSK or
        certificate) fits the peer's AUTH method first (§2.15; strongSwan's lookup)."""
        found = [
            c
            for c in self.sa.candidates
            if (c.remote_id is None or id_matches(c.remote_id, peer))
            and (me is None or id_matches(c.local_id, me))
        ]
        for connection in found:
            if (connection.remote_trust is not None) == pubkey:
                return connection
        if found:
            return found[0]
        raise AuthenticationFailed(f"no connection for peer identity {peer}")

    def _remember_token(self, msg: Inbound) -> None:
        notify = msg.notify(NotifyType.QUICK_CRASH_DETECTION)
        if notify is not None and 16 <= len(notify.data) <= 128:
            self.peer_token = notify.data

    def finish(self, now: float) -> None:
        if self.peer_cert is not None:
            self.sa.certified(self.peer_cert)
        self.sa.established(
            now, self.sa.connection.local_id, self.peer, self.peer_token, self.initial_contact
        )
