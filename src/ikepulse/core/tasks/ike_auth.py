"""IKE_AUTH identities and authentication: PSK and certificates (RFC 7296 §1.2, §2.15,
RFC 7427), and EAP (§2.16).

With EAP the exchange takes several rounds; this task leads it, the others wait:

    client (initiator)                          gateway (responder)
    IDi [IDr] SA TSi TSr  (no AUTH)          ->
                                             <-  IDr AUTH(gateway's method) EAP(Request)
    EAP(Response)                            ->
                                             <-  EAP(Request) ...  EAP(Success)
    AUTH(MSK)                                ->
                                             <-  AUTH(MSK) SA TSi TSr

The last two AUTH payloads use the EAP MSK as the shared secret over the same signed
octets as the first round's (§2.16).
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from cryptography import x509

from ...crypto.auth import psk_auth, signed_octets
from ...wire.enums import AuthMethod, NotifyType
from ...wire.payloads import (
    AuthPayload,
    CertPayload,
    EapPayload,
    IdiPayload,
    IdrPayload,
    NotifyPayload,
    Payload,
)
from .. import pubkey_auth
from ..connection import AuthClass, ConnectionConfig, Identity, identity_match
from ..connection_index import narrowed
from ..eap import EapPeer, EapServer
from ..errors import AuthenticationFailed, IkeError
from ..qcd import qcd_token
from ..task import Inbound, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost

log = logging.getLogger("ikepulse.ike")


def _identity(payload) -> Identity:
    return Identity(payload.id_type, payload.data)


def select_connection(
    candidates: tuple[ConnectionConfig, ...],
    peer: Identity,
    me: Identity | None,
    auth: AuthPayload | None,
) -> ConnectionConfig:
    """The candidate whose ``remote.id`` fits the peer's IDi best (an exact identity before a
    ``*`` pattern before ``%any``; ties in configuration order), whose ``local.id`` is the
    IDr the peer asked for, and whose ``remote.auth`` is EAP exactly when the peer sent no
    AUTH; one whose ``remote.auth`` (PSK or certificate) fits the AUTH method first (§2.15,
    §2.16; strongSwan's peer configuration lookup)."""
    eap = auth is None
    pubkey = auth is not None and auth.method != AuthMethod.SHARED_KEY_MIC
    best, best_key = None, None
    for connection in narrowed(candidates, peer):
        if me is not None and not identity_match(connection.local_id, me):
            continue
        if connection.remote_auth.eap != eap or connection.local_auth.eap:
            continue  # an EAP client's connection never answers
        score = identity_match(connection.remote_id, peer)
        key = ((connection.remote_auth is AuthClass.PUBKEY) == pubkey, score)
        if score and (best_key is None or key > best_key):
            best, best_key = connection, key
    if best is None:
        method = "EAP" if eap else "AUTH"
        raise AuthenticationFailed(f"no connection for peer identity {peer} ({method})")
    return best


class IkeAuth(Task):
    leads = True

    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.peer: Identity | None = None
        self.peer_token: bytes | None = None
        self.initial_contact = False
        """Responder: the peer said it holds no other IKE SA with us (§2.4)."""
        self.own_id: bytes = b""
        self.peer_id: bytes = b""
        """The ID payload bodies the AUTH payloads sign (IDx', §2.15)."""
        self.eap_server: EapServer | None = None
        self.eap_peer: EapPeer | None = None
        self.eap_out: EapPayload | None = None
        """The EAP message for our next message."""
        self.msk: bytes | None = None
        self.msk_auth_sent = False
        self.peer_cert: x509.Certificate | None = None
        """The peer's end-entity certificate, when it authenticated with one."""
        self.wanted_cas: frozenset[bytes] | None = None
        """The CAs the peer's CERTREQ names (SHA-1 of their keys), None without one."""

    # --- AUTH payloads --------------------------------------------------------------------

    def _octets(self, id_body: bytes, ours: bool) -> bytes:
        """Our (``ours``) or the peer's signed octets (§2.15)."""
        sa = self.sa
        signer_is_initiator = sa.initiator if ours else not sa.initiator
        sk = sa.sk
        message = sk.sent_init if ours else sk.received_init
        other_nonce = sk.nonce_r if signer_is_initiator else sk.nonce_i
        sk_p = sk.keys.sk_pi if signer_is_initiator else sk.keys.sk_pr
        return signed_octets(message, other_nonce, sk.prf, sk_p, id_body)

    def _auth_data(self, key: bytes, id_body: bytes, ours: bool) -> bytes:
        """AUTH over our (``ours``) or the peer's signed octets, ``key`` the shared secret."""
        return psk_auth(self.sa.sk.prf, key, self._octets(id_body, ours))

    def _own_auth(self, connection: ConnectionConfig) -> AuthPayload | None:
        """Our AUTH by ``local.auth``: PSK or a signature; None for an EAP client (its AUTH
        uses the MSK; ``select_connection`` never picks its connection as responder)."""
        if connection.local_auth is AuthClass.PUBKEY:
            octets = self._octets(self.own_id, ours=True)
            return pubkey_auth.sign(self.sa, connection.local_pubkey, octets)
        if connection.local_auth is AuthClass.PSK:
            key = connection.shared_key(self.peer or connection.remote_id)
            return AuthPayload(AuthMethod.SHARED_KEY_MIC, self._auth_data(key, self.own_id, True))
        return None

    def _verify_peer(self, connection: ConnectionConfig, peer: Identity, msg: Inbound) -> None:
        """The peer's AUTH by ``remote.auth``: a certificate chain and signature, or PSK."""
        auth = msg.first(AuthPayload)
        if connection.remote_auth is not AuthClass.PUBKEY:
            self._verify(connection, peer, auth, connection.shared_key(peer))
            return
        if auth is None:
            raise AuthenticationFailed(f"no AUTH payload from {peer}")
        octets = self._octets(self.peer_id, ours=False)
        certs = msg.all(CertPayload)
        trust = connection.remote_trust
        self.peer_cert = pubkey_auth.verify(self.sa, trust, peer, auth, certs, octets, msg.now)
        self.peer = peer

    def _verify(self, connection: ConnectionConfig, peer: Identity, auth, key: bytes) -> None:
        if auth is None or auth.method != AuthMethod.SHARED_KEY_MIC:
            method = "no AUTH payload" if auth is None else f"auth method {auth.method.name}"
            raise AuthenticationFailed(f"{method}; {connection.remote_auth.value} is configured")
        expected = self._auth_data(key, self.peer_id, ours=False)
        if not hmac.compare_digest(expected, auth.data):
            what = "MSK-based AUTH" if self.msk is not None else "PSK AUTH"
            raise AuthenticationFailed(
                f"{what} of {peer} does not verify"
                + (" (wrong pre-shared key?)" if self.msk is None else "")
            )
        self.peer = peer

    def _msk_auth(self) -> AuthPayload:
        self.msk_auth_sent = True
        return AuthPayload(AuthMethod.SHARED_KEY_MIC, self._auth_data(self.msk, self.own_id, True))

    # --- build ----------------------------------------------------------------------------

    def build(self, out: list[Payload]) -> None:
        if self.eap_out is not None:  # a round of EAP
            out.append(self.eap_out)
            self.eap_out = None
            return
        if self.msk is not None:  # the last round: AUTH with the MSK (§2.16)
            out.append(self._msk_auth())
            return
        sa, connection = self.sa, self.sa.connection
        own_id = (IdiPayload if self.initiator else IdrPayload)(
            connection.local_id.id_type, connection.local_id.data
        )
        self.own_id = own_id.body
        out.append(own_id)
        if connection.local_auth is AuthClass.PUBKEY:
            if self.initiator:  # the responder's CERTREQ came in IKE_SA_INIT
                self.wanted_cas = pubkey_auth.requested(pubkey_auth.peer_init_payloads(sa))
            out.extend(pubkey_auth.cert_payloads(connection.local_pubkey, self.wanted_cas))
        if self.initiator and not sa.manager.holds_other_sa(sa):
            # §2.4: we hold no other IKE SA with this peer, so it should drop any it has.
            out.append(NotifyPayload(NotifyType.INITIAL_CONTACT))
        if self.initiator and connection.remote_auth is AuthClass.PUBKEY:
            out.append(pubkey_auth.certreq(connection.remote_trust))
        remote_id = connection.remote_id
        if self.initiator and remote_id is not None and not remote_id.is_pattern:
            out.append(IdrPayload(remote_id.id_type, remote_id.data))
        auth = self._own_auth(connection)
        if auth is not None:
            out.append(auth)
        if self.eap_server is not None:
            out.append(self.eap_server.start())
        token = qcd_token(sa.manager.qcd_secret, sa.spi_i, sa.spi_r)
        out.append(NotifyPayload(NotifyType.QUICK_CRASH_DETECTION, token))

    # --- process --------------------------------------------------------------------------

    def process(self, msg: Inbound) -> Status:
        return self._process_response(msg) if self.initiator else self._process_request(msg)

    def _process_response(self, msg: Inbound) -> Status:
        connection = self.sa.connection
        auth, eap = msg.first(AuthPayload), msg.first(EapPayload)
        if auth is None and eap is None:  # errors about the CHILD SA come with AUTH
            msg.raise_error_notify("IKE_AUTH")
        if self.peer is None:  # the first response: the gateway's identity and AUTH
            peer_id = msg.first(IdrPayload)
            if peer_id is None:
                raise AuthenticationFailed("IKE_AUTH response without IDr")
            peer = _identity(peer_id)
            if not identity_match(connection.remote_id, peer):
                raise AuthenticationFailed(f"peer is {peer}, expected {connection.remote_id}")
            if connection.remote_auth.eap:
                raise AuthenticationFailed("remote.auth EAP is for a gateway's clients")
            self.peer_id = peer_id.body
            self._verify_peer(connection, peer, msg)
            self._remember_token(msg)
            if not connection.local_auth.eap:
                return Status.DONE
            user = connection.local_eap_id or connection.local_id
            password = connection.credentials.eap_password(user, peer) or b""
            self.eap_peer = EapPeer(self.sa.rng, user, password)
            if eap is None:
                raise AuthenticationFailed("the gateway did not start EAP")
        if self.msk_auth_sent:
            self._verify(connection, self.peer, auth, self.msk)
            log.info("%s: EAP authentication as %s complete", self.sa.label, self.eap_peer.user)
            return Status.DONE
        if eap is None:
            raise AuthenticationFailed("IKE_AUTH response without EAP during EAP")
        self.eap_out = self.eap_peer.process(eap)
        if self.eap_peer.succeeded:
            self.msk = self.eap_peer.msk
        return Status.NEED_MORE

    def _process_request(self, msg: Inbound) -> Status:
        auth = msg.first(AuthPayload)
        if self.eap_server is not None:  # a later round
            return self._eap_round(msg, auth)
        peer_id, my_id = msg.first(IdiPayload), msg.first(IdrPayload)
        if peer_id is None:
            raise AuthenticationFailed("IKE_AUTH request without IDi")
        peer = _identity(peer_id)
        connection = select_connection(self.sa.candidates, peer, my_id and _identity(my_id), auth)
        self.peer_id = peer_id.body
        if connection.remote_auth.eap:
            self.peer = peer
            self.eap_server = EapServer(
                self.sa.rng,
                str(connection.local_id).encode(),
                lambda user: connection.credentials.eap_password(user, connection.local_id),
                peer,
                connection.ask_eap_identity,
                connection.remote_eap_id,
            )
        else:
            self._verify_peer(connection, peer, msg)
        self.wanted_cas = pubkey_auth.requested(msg.payloads)
        self.sa.select_connection(connection)
        self.initial_contact = msg.notify(NotifyType.INITIAL_CONTACT) is not None
        self._remember_token(msg)
        return Status.DONE if self.eap_server is None else Status.NEED_MORE

    def _eap_round(self, msg: Inbound, auth: AuthPayload | None) -> Status:
        server = self.eap_server
        if server.succeeded:
            if auth is None:
                raise AuthenticationFailed("no AUTH after EAP Success")
            self.msk = server.msk
            self._verify(self.sa.connection, self.peer, auth, server.msk)
            log.info("%s: EAP-MSCHAPv2 user %s authenticated", self.sa.label, server.user)
            return Status.DONE
        eap = msg.first(EapPayload)
        if eap is None:
            raise AuthenticationFailed(f"IKE_AUTH request from {self.peer} without EAP")
        try:
            self.eap_out = server.process(eap)
        except AuthenticationFailed as exc:
            log.warning("%s: %s", self.sa.label, exc.reason)
            raise
        return Status.NEED_MORE

    def round_timeout(self) -> tuple[float, IkeError] | None:
        if self.eap_peer is not None:
            return 0.0, AuthenticationFailed("EAP timeout: the gateway stopped answering")
        if self.eap_server is None:
            return None
        wait = self.sa.connection.eap_timeout
        user = self.eap_server.identity
        return wait, AuthenticationFailed(f"EAP timeout: {user} did not answer within {wait:g}s")

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
