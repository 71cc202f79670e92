"""Phase 1: Main Mode and Aggressive Mode with pre-shared keys (RFC 2409 §5, §5.4; NAT-T
discovery as RFC 3947 §3), or with signatures (§5.1: [CERT,] SIG where HASH_I/R stand
below, CR from each side; ``signature_auth``).

Messages are numbered as in RFC 2409:

    Main Mode                              Aggressive Mode
    1  I->R  SA, VID*                      1  I->R  SA, KE, Ni, IDii, VID*
    2  R->I  SA, VID*                      2  R->I  SA, KE, Nr, IDir, HASH_R, VID*, NAT-D*
    3  I->R  KE, Ni, NAT-D*                3  I->R  [HDR*] HASH_I, NAT-D*
    4  R->I  KE, Nr, NAT-D*
    5  I->R  HDR* IDii, HASH_I
    6  R->I  HDR* IDir, HASH_R
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.dh import key_exchange_for, public_key_size
from ...crypto.errors import CryptoError
from ...crypto.ikev1 import (
    natd_hash,
    phase1_auth_prf,
    phase1_hash,
    skeyid_psk,
    skeyid_signature,
)
from ...wire.buffer import Writer
from ...wire.enums import IdType
from ...wire.isakmp import PayloadChain
from ...wire.isakmp_enums import AuthMethodV1, IdV1, NotifyV1, ProtocolV1
from ...wire.isakmp_payloads import (
    HashV1Payload,
    IdV1Payload,
    KeV1,
    NatDV1,
    NonceV1,
    NotifyV1Payload,
)
from ...wire.isakmp_sa import ProposalV1, SaV1
from ..connection import ConnectionConfig, Identity
from ..errors import AuthenticationFailed, InvalidSyntax, NoProposalChosen
from . import signature_auth
from .proposals import Phase1Choice, accept_phase1, phase1_sa, select_phase1
from .vendor_ids import PeerFeatures, our_vids

if TYPE_CHECKING:
    from ..hosts import IsakmpHost

NONCE_SIZE = 32


def id_payload(identity: Identity) -> IdV1Payload:
    """Our phase 1 identity (RFC 2407 §4.6.2: protocol and port zero)."""
    return IdV1Payload(IdV1(int(identity.id_type)), 0, 0, identity.data)


def peer_identity(payload: IdV1Payload | None) -> Identity:
    if payload is None:
        raise InvalidSyntax("phase 1 message without an ID payload")
    if payload.id_type not in (IdV1.IPV4_ADDR, IdV1.IPV6_ADDR, IdV1.FQDN, IdV1.USER_FQDN,
                               IdV1.DER_ASN1_DN, IdV1.KEY_ID):  # fmt: skip
        raise InvalidSyntax(f"phase 1 identity of type {payload.id_type.name}")
    return Identity(IdType(int(payload.id_type)), payload.data)


def body_of(payload) -> bytes:
    """A payload's body as it goes on the wire (what SAi_b and IDii_b stand for, §5)."""
    w = Writer()
    payload.push(w)
    return w.getvalue()


def phase1_lifetime(connection: ConnectionConfig) -> int:
    """Seconds an ISAKMP SA may live: until its renewal plus over_time (0: a day)."""
    renewals = [t for t in (connection.rekey_time, connection.reauth_time) if t > 0]
    return int(min(renewals) + connection.ike_over_time) if renewals else 86400


def _need(chain: PayloadChain, cls, what: str):
    found = chain.first(cls)
    if found is None:
        raise InvalidSyntax(f"phase 1 message without {what}")
    return found


class Phase1:
    """One ISAKMP SA's phase 1, in either role and either mode."""

    def __init__(self, sa: IsakmpHost, aggressive: bool) -> None:
        self.sa = sa
        self.aggressive = aggressive
        self.expect = 1 if not sa.initiator else 2
        """The number of the message we wait for."""
        self.peer = PeerFeatures()
        self.sai_b = b""
        self.choice: Phase1Choice | None = None
        self.ke = None
        self.g_xi = self.g_xr = self.ni = self.nr = b""
        self.g_xy = b""
        self.peer_id: Identity | None = None
        self.peer_id_b = b""
        self.undecryptable = 0
        """Messages of the peer that did not decrypt once we had keys (a PSK mismatch)."""

    @property
    def encrypted_next(self) -> bool:
        """The message we wait for comes encrypted (MM5, MM6): it alone has keys to use."""
        return not self.aggressive and self.expect in (5, 6)

    @property
    def either_next(self) -> bool:
        """AM3 may come in the clear or encrypted (RFC 2409 §5.4 leaves it open)."""
        return self.aggressive and self.expect == 3

    # --- helpers ---------------------------------------------------------------------------

    @property
    def _connection(self) -> ConnectionConfig:
        return self.sa.connection or self.sa.candidates[0]

    def _auth(self, connection: ConnectionConfig | None = None) -> AuthMethodV1:
        return signature_auth.auth_method(connection or self._connection)

    @property
    def _signatures(self) -> bool:
        return signature_auth.uses_signatures(self.choice.auth)

    def _certreqs(self) -> list:
        """CR payloads when we want the peer's certificate (§5.1)."""
        method = self.choice.auth if self.choice is not None else self._auth()
        return signature_auth.certreqs(self._connection, method)

    def _natd(self) -> list[NatDV1]:
        """RFC 3947 §3.2: the peer's address as we send to it, then ours (a made-up one of
        ours when encapsulation is forced, so the peer sees a NAT)."""
        sa = self.sa
        if not self.peer.natt:
            return []
        hash_id, cookies = self.choice.hash, (sa.spi_i, sa.spi_r)
        local = sa.local
        if sa.connection is not None and sa.connection.force_encap:
            local = (local[0], 0)
        return [
            NatDV1(natd_hash(hash_id, *cookies, *sa.remote)),
            NatDV1(natd_hash(hash_id, *cookies, *local)),
        ]

    def _detect_nat(self, chain: PayloadChain, src, dst) -> None:
        hashes = [p.hash for p in chain.all(NatDV1)]
        if not self.peer.natt or len(hashes) < 2:
            return
        sa, hash_id = self.sa, self.choice.hash
        cookies = (sa.spi_i, sa.spi_r)
        nat_local = hashes[0] != natd_hash(hash_id, *cookies, *dst)
        nat_remote = natd_hash(hash_id, *cookies, *src) not in hashes[1:]
        sa.nat_detected(nat_local, nat_remote)

    def _key_exchange(self, chain: PayloadChain) -> None:
        peer_public = _need(chain, KeV1, "a KE payload").data
        nonce = _need(chain, NonceV1, "a nonce").data
        if not 8 <= len(nonce) <= 256:
            raise InvalidSyntax(f"nonce of {len(nonce)} bytes (RFC 2409 §5: 8 to 256)")
        group = self.choice.suite.dh
        if self.ke is None or self.ke.group != group:
            self.ke = key_exchange_for(group, self.sa.rng)
        try:
            self.g_xy = self.ke.shared_secret(peer_public)
        except CryptoError as exc:
            raise InvalidSyntax(f"the peer's KE payload: {exc}") from None
        if self.sa.initiator:
            self.g_xi, self.g_xr, self.nr = self.ke.public_key, peer_public, nonce
        else:
            self.g_xi, self.g_xr, self.ni = peer_public, self.ke.public_key, nonce

    def _our_nonce(self) -> bytes:
        nonce = self.sa.rng.randbytes(NONCE_SIZE)
        if self.sa.initiator:
            self.ni = nonce
        else:
            self.nr = nonce
        return nonce

    def _derive(self, connection: ConnectionConfig) -> None:
        sa = self.sa
        sa.keying.chosen(self.choice)
        if self._signatures:
            skeyid = skeyid_signature(sa.keying.prf, self.ni, self.nr, self.g_xy)
        else:
            psk = connection.shared_key(self.peer_id or connection.remote_id)
            skeyid = skeyid_psk(sa.keying.prf, psk, self.ni, self.nr)
        sa.keying.derive(skeyid, self.g_xy, self.g_xi, self.g_xr, (sa.spi_i, sa.spi_r))

    def _hash(self, initiator: bool, id_b: bytes) -> bytes:
        sa = self.sa
        prf = phase1_auth_prf(self.choice.hash, self.choice.auth)
        return phase1_hash(
            prf, sa.keying.keys.skeyid, initiator=initiator, g_xi=self.g_xi,
            g_xr=self.g_xr, cky_i=sa.spi_i, cky_r=sa.spi_r, sai_b=self.sai_b, id_b=id_b,
        )  # fmt: skip

    def _proof(self, initiator: bool, id_b: bytes) -> list:
        """HASH_I/HASH_R, or with signatures our certificates and SIG over it (§5.1)."""
        value = self._hash(initiator, id_b)
        if self._signatures:
            return signature_auth.proof(self._connection, self.choice.auth, value)
        return [HashV1Payload(value)]

    def _check_hash(
        self, chain: PayloadChain, of_initiator: bool, connection: ConnectionConfig, now: float
    ) -> None:
        if self._signatures:
            expected = self._hash(of_initiator, self.peer_id_b)
            self.sa.certified(signature_auth.check(
                self.sa, connection, self.peer_id, chain, self.choice.auth, expected, now
            ))  # fmt: skip
            return
        theirs = _need(chain, HashV1Payload, "a HASH payload").data
        if theirs != self._hash(of_initiator, self.peer_id_b):
            raise AuthenticationFailed(
                "the peer's phase 1 hash does not match: different pre-shared key?"
            )

    def _take_peer_id(self, chain: PayloadChain) -> None:
        index = next(i for i, p in enumerate(chain.payloads) if isinstance(p, IdV1Payload))
        self.peer_id = peer_identity(chain.payloads[index])
        self.peer_id_b = chain.body(index)

    def _check_peer_id(self, connection: ConnectionConfig) -> None:
        wanted = connection.remote_id
        if wanted is not None and not wanted.matches(self.peer_id):
            raise AuthenticationFailed(f"peer identity {self.peer_id} is not {wanted}")

    def _own_id(self) -> IdV1Payload:
        return id_payload(self._connection.local_id)

    # --- initiator -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        connection = self.sa.connection
        offer = phase1_sa(connection.proposals, self._auth(), phase1_lifetime(connection))
        self.sai_b = body_of(offer)
        payloads = [offer]
        if self.aggressive:
            group = connection.proposals[0].dh[0]
            self.ke = key_exchange_for(group, self.sa.rng)
            payloads += [KeV1(self.ke.public_key), NonceV1(self._our_nonce()), self._own_id()]
            payloads += self._certreqs()
        self.sa.send_phase1(payloads + our_vids(), now)

    def receive(self, chain: PayloadChain | None, raw_ct: bytes, src, dst, now: float) -> None:
        """One phase 1 message (``chain`` None when it is encrypted: ``raw_ct``)."""
        step = (self.aggressive, self.sa.initiator, self.expect)
        handler = {
            (False, True, 2): self._main_2,
            (False, True, 4): self._main_4,
            (False, True, 6): self._main_6,
            (False, False, 1): self._main_1,
            (False, False, 3): self._main_3,
            (False, False, 5): self._main_5,
            (True, True, 2): self._aggressive_2,
            (True, False, 1): self._aggressive_1,
            (True, False, 3): self._aggressive_3,
        }.get(step)
        if handler is None:
            raise InvalidSyntax(f"unexpected phase 1 message {self.expect}")
        handler(chain, raw_ct, src, dst, now)

    def _main_2(self, chain, raw_ct, src, dst, now) -> None:
        self.peer.learn(chain)
        self.choice = accept_phase1(
            self.sa.connection.proposals, self._auth(), _need(chain, SaV1, "an SA payload")
        )
        self.ke = key_exchange_for(self.choice.suite.dh, self.sa.rng)
        self.expect = 4
        payloads = [KeV1(self.ke.public_key), NonceV1(self._our_nonce()), *self._natd()]
        self.sa.send_phase1(payloads, now)

    def _main_4(self, chain, raw_ct, src, dst, now) -> None:
        self._key_exchange(chain)
        self._detect_nat(chain, src, dst)
        self._derive(self.sa.connection)
        self.sa.float_to_natt_port()
        own = self._own_id()
        id_b = body_of(own)
        self.expect = 6
        payloads = [own, *self._proof(True, id_b), *self._certreqs()]
        if not self.sa.manager.holds_other_sa(self.sa):
            payloads.append(self._initial_contact())
        self.sa.send_phase1(payloads, now, encrypted=True)

    def _initial_contact(self) -> NotifyV1Payload:
        """RFC 2407 §4.6.3.3: we hold no other SA with the peer (SPI = both cookies)."""
        sa = self.sa
        return NotifyV1Payload(NotifyV1.INITIAL_CONTACT, 1, sa.spi_i + sa.spi_r)

    def _main_6(self, chain, raw_ct, src, dst, now) -> None:
        self._take_peer_id(chain)
        self._check_peer_id(self.sa.connection)
        self._check_hash(chain, False, self.sa.connection, now)
        self.sa.phase1_done(self.peer_id, now)

    # --- responder -------------------------------------------------------------------------

    def _choose(self, offered: SaV1, candidates) -> None:
        error: Exception = NoProposalChosen("no connection accepts IKEv1 here")
        for connection in candidates:
            try:
                self.choice = select_phase1(connection.proposals, self._auth(connection), offered)
            except NoProposalChosen as exc:
                error = exc
                continue
            self.sa.select_connection(connection)
            return
        raise error

    def _answer_sa(self) -> SaV1:
        transform = self.choice.transform
        return SaV1((ProposalV1(1, ProtocolV1.ISAKMP, b"", (transform,)),))

    def _main_1(self, chain, raw_ct, src, dst, now) -> None:
        self.peer.learn(chain)
        index = next((i for i, p in enumerate(chain.payloads) if isinstance(p, SaV1)), None)
        if index is None:
            raise InvalidSyntax("Main Mode message 1 without an SA payload")
        self.sai_b = chain.body(index)
        self._choose(chain.payloads[index], self.sa.v1_candidates(aggressive=False))
        self.expect = 3
        self.sa.send_phase1(
            [self._answer_sa(), *our_vids()], now, final=True
        )  # resent only when the peer repeats its own

    def _main_3(self, chain, raw_ct, src, dst, now) -> None:
        self._our_nonce()
        self._key_exchange(chain)
        self._detect_nat(chain, src, dst)
        self.expect = 5
        payloads = [KeV1(self.ke.public_key), NonceV1(self.nr), *self._natd()]
        self.sa.send_phase1(payloads + self._certreqs(), now, final=True)  # only on a repeat

    def _main_5(self, chain, raw_ct, src, dst, now) -> None:
        """Which connection (and so which PSK) the initiator used shows only once its
        message decrypts and its hash verifies: try each one that fits."""
        sa = self.sa
        error: Exception = AuthenticationFailed("no connection fits the peer's identity")
        for connection in (sa.connection, *sa.v1_candidates(aggressive=False)):
            if connection is None or not _same_proposals(connection, sa.connection):
                continue
            self._derive(connection)
            try:
                chain = sa.open_phase1(raw_ct)
                self._take_peer_id(chain)
                self._check_peer_id(connection)
                self._check_hash(chain, True, connection, now)
            except (AuthenticationFailed, InvalidSyntax) as exc:
                error = exc
                continue
            sa.select_connection(connection)
            sa.learn_notifies(chain, now)
            own = self._own_id()
            payloads = [own, *self._proof(False, body_of(own))]
            sa.send_phase1(payloads, now, encrypted=True, final=True)
            sa.phase1_done(self.peer_id, now)
            return
        raise error

    def _aggressive_1(self, chain, raw_ct, src, dst, now) -> None:
        self.peer.learn(chain)
        index = next((i for i, p in enumerate(chain.payloads) if isinstance(p, SaV1)), None)
        ke = chain.first(KeV1)
        if index is None or ke is None:
            raise InvalidSyntax("Aggressive Mode message 1 without SA or KE")
        self.sai_b = chain.body(index)
        self._take_peer_id(chain)
        candidates = [
            c for c in self.sa.v1_candidates(aggressive=True)
            if c.remote_id is None or c.remote_id.matches(self.peer_id)
        ]  # fmt: skip
        if not candidates:
            raise AuthenticationFailed(
                f"no connection with aggressive = true accepts {self.peer_id}"
            )
        self._choose(chain.payloads[index], candidates)
        if len(ke.data) != public_key_size(self.choice.suite.dh):
            raise NoProposalChosen("the KE payload does not fit the chosen transform's group")
        self._our_nonce()
        self._key_exchange(chain)
        self._detect_nat(chain, src, dst)
        self._derive(self.sa.connection)
        own = self._own_id()
        self.expect = 3
        payloads = [
            self._answer_sa(),
            KeV1(self.ke.public_key),
            NonceV1(self.nr),
            own,
            *self._proof(False, body_of(own)),
            *self._certreqs(),
            *our_vids(),
            *self._natd(),
        ]
        self.sa.send_phase1(payloads, now)

    def _aggressive_2(self, chain, raw_ct, src, dst, now) -> None:
        self.peer.learn(chain)
        self.choice = accept_phase1(
            self.sa.connection.proposals, self._auth(), _need(chain, SaV1, "an SA payload")
        )
        if self.choice.suite.dh != self.ke.group:
            raise NoProposalChosen("the responder chose another group than our KE payload's")
        self._key_exchange(chain)
        self._take_peer_id(chain)
        self._check_peer_id(self.sa.connection)
        self._derive(self.sa.connection)
        self._check_hash(chain, False, self.sa.connection, now)
        self._detect_nat(chain, src, dst)
        self.sa.float_to_natt_port()
        own_b = body_of(self._own_id())
        payloads = [*self._proof(True, own_b), *self._natd()]
        self.sa.send_phase1(payloads, now, encrypted=True, final=True)
        self.sa.phase1_done(self.peer_id, now)

    def _aggressive_3(self, chain, raw_ct, src, dst, now) -> None:
        if chain is None:
            chain = self.sa.open_phase1(raw_ct)
        self._check_hash(chain, True, self.sa.connection, now)
        self._detect_nat(chain, src, dst)
        self.sa.phase1_done(self.peer_id, now)


def _same_proposals(a: ConnectionConfig, b: ConnectionConfig | None) -> bool:
    return b is None or a.proposals == b.proposals
