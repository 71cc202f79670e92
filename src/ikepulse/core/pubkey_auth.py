"""Certificate authentication in IKE_AUTH (RFC 7296 §2.15, §3.6-§3.8; RFC 7427; RFC 4945).

What we send: CERT payloads with our end-entity certificate and intermediates, CERTREQ
naming the CAs we trust, AUTH signed with the method the peer can verify. What we check:
the peer's AUTH signature with the key of its end-entity certificate, the chain to one of
our CAs at the wall-clock time, and that the certificate names the identity it claims.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from ..crypto import signature
from ..crypto.algid import Scheme, SignatureError
from ..crypto.cert_ids import identities_in, in_certificate
from ..crypto.certs import CertificateError, Trust, spki_sha1, validate
from ..crypto.signature import PublicKey
from ..wire.buffer import DecodeError
from ..wire.enums import AuthMethod, CertEncoding, HashAlgorithm, NotifyType
from ..wire.message import decode_message
from ..wire.payloads import AuthPayload, CertPayload, CertreqPayload, NotifyPayload
from .connection import Identity, LocalPubkey
from .errors import AuthenticationFailed

if TYPE_CHECKING:
    from .hosts import TaskHost

log = logging.getLogger(__name__)
T = TypeVar("T")

SIGNATURE_METHODS = frozenset(
    {
        AuthMethod.RSA_SIG,
        AuthMethod.ECDSA_SHA256_P256,
        AuthMethod.ECDSA_SHA384_P384,
        AuthMethod.ECDSA_SHA512_P521,
        AuthMethod.DIGITAL_SIGNATURE,
    }
)


def hash_notify() -> NotifyPayload:
    """SIGNATURE_HASH_ALGORITHMS with what we can verify (RFC 7427 §4)."""
    data = b"".join(int(h).to_bytes(2, "big") for h in signature.OUR_HASHES)
    return NotifyPayload(NotifyType.SIGNATURE_HASH_ALGORITHMS, data)


def hashes_in(notify: NotifyPayload | None) -> frozenset[HashAlgorithm] | None:
    if notify is None:
        return None
    data = notify.data[: len(notify.data) & ~1]
    return frozenset(
        HashAlgorithm(int.from_bytes(data[i : i + 2], "big")) for i in range(0, len(data), 2)
    )


def peer_hashes(sa: TaskHost) -> frozenset[HashAlgorithm] | None:
    """The hashes the peer announced in its IKE_SA_INIT message, None if it did not."""
    for payload in peer_init_payloads(sa):
        if isinstance(payload, NotifyPayload) and (
            payload.type == NotifyType.SIGNATURE_HASH_ALGORITHMS
        ):
            return hashes_in(payload)
    return None


def certreq(trust: Trust) -> CertreqPayload:
    """One CERTREQ naming every CA we trust for the peer (§3.7)."""
    data = b"".join(spki_sha1(ca) for ca in trust.cacerts)
    return CertreqPayload(CertEncoding.X509_SIGNATURE, data)


def requested(payloads) -> frozenset[bytes] | None:
    """The CA key hashes named in X.509 CERTREQ payloads (§3.7), None without any."""
    reqs = [
        p
        for p in payloads
        if isinstance(p, CertreqPayload) and p.encoding == CertEncoding.X509_SIGNATURE
    ]
    if not reqs:
        return None
    return frozenset(r.data[i : i + 20] for r in reqs for i in range(0, len(r.data) - 19, 20))


def peer_init_payloads(sa: TaskHost) -> tuple:
    """The payloads of the peer's IKE_SA_INIT message (empty if it does not decode)."""
    try:
        return decode_message(sa.sk.received_init).payloads
    except DecodeError:
        return ()


def cert_payloads(local: LocalPubkey, wanted: frozenset[bytes] | None) -> list[CertPayload]:
    """Our end-entity certificate, then the intermediates up to the first CA the peer named
    in its CERTREQ (it has that one), all of them when it named none; roots stay home."""
    ee, *rest = local.certs
    out = [ee]
    for ca in rest:
        if ca.subject == ca.issuer or (wanted and spki_sha1(ca) in wanted):
            break
        out.append(ca)
    return [CertPayload(CertEncoding.X509_SIGNATURE, c.public_bytes(Encoding.DER)) for c in out]


def sign(sa: TaskHost, local: LocalPubkey, octets: bytes) -> AuthPayload:
    method, scheme = signature.choose(local.key, peer_hashes(sa), local.pss)
    return AuthPayload(method, signature.sign(local.key, method, scheme, octets))


def load_certificates(ders: list[bytes], peer: Identity) -> list[x509.Certificate]:
    """DER certificates as the peer sent them, end entity first; AuthenticationFailed for
    a malformed one or none at all."""
    out = []
    for der in ders:
        try:
            out.append(x509.load_der_x509_certificate(der))
        except (ValueError, x509.InvalidVersion) as exc:
            raise AuthenticationFailed(f"{peer} sent a malformed certificate: {exc}") from None
    if not out:
        raise AuthenticationFailed(f"{peer} sent no X.509 certificate (CERT payload)")
    return out


def _certificates(payloads: list[CertPayload], peer: Identity) -> list[x509.Certificate]:
    # CERTREQ payloads are CertPayloads too (§3.7 shares §3.6's layout): skipped here.
    return load_certificates(
        [
            p.data
            for p in payloads
            if type(p) is CertPayload and p.encoding == CertEncoding.X509_SIGNATURE
        ],
        peer,
    )


def check_certified(
    trust: Trust,
    peer: Identity,
    certs: list[x509.Certificate],
    at: dt.datetime,
    check_signature: Callable[[PublicKey], T],
    what: str = "AUTH",
) -> T:
    """What ``check_signature`` (given the end-entity certificate's key) returns, once it,
    the chain (at wall-clock time ``at``) and the identity check out; AuthenticationFailed
    saying which did not (``what`` names the peer's proof: AUTH, SIG), whatever was sent.
    IKEv1 and IKEv2 both check peers here."""
    ee, *intermediates = certs
    try:
        try:
            result = check_signature(signature.public_key_of(ee))
        except SignatureError as exc:
            raise AuthenticationFailed(f"{what} of {peer} refused: {exc}") from None
        try:
            validate(ee, intermediates, trust, at)
        except CertificateError as exc:
            raise AuthenticationFailed(f"certificate of {peer} refused: {exc}") from None
        if not in_certificate(peer.id_type, peer.data, ee):
            names = "; ".join(identities_in(ee))
            raise AuthenticationFailed(
                f"{peer} is not an identity of its certificate (which names {names})"
            )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # pyca parses extensions and names lazily: a malformed one surfaces here.
        raise AuthenticationFailed(f"{peer} sent a malformed certificate: {exc}") from None
    return result


def check_peer(
    trust: Trust,
    peer: Identity,
    auth: AuthPayload,
    certs: list[CertPayload],
    octets: bytes,
    at: dt.datetime,
) -> tuple[x509.Certificate, Scheme]:
    """The peer's end-entity certificate and signature scheme, once its AUTH, its chain
    (at wall-clock time ``at``) and its identity check out; AuthenticationFailed saying
    which did not, whatever the peer sent."""
    if auth.method not in SIGNATURE_METHODS:
        raise AuthenticationFailed(
            f"{peer} uses auth method {auth.method.name}; this connection wants a signature"
        )
    chain = _certificates(certs, peer)

    def check(key: PublicKey) -> Scheme:
        return signature.verify(key, auth.method, auth.data, octets)

    return chain[0], check_certified(trust, peer, chain, at, check)


def wall_clock(sa: TaskHost, now: float) -> dt.datetime:
    """The wall-clock time of ``now`` (certificates are valid in calendar time)."""
    return dt.datetime.fromtimestamp(now + sa.manager.wall_offset, tz=dt.UTC)


def verify(
    sa: TaskHost,
    trust: Trust,
    peer: Identity,
    auth: AuthPayload,
    certs: list[CertPayload],
    octets: bytes,
    now: float,
) -> x509.Certificate:
    """``check_peer`` at the wall-clock time of ``now``, logged."""
    ee, scheme = check_peer(trust, peer, auth, certs, octets, wall_clock(sa, now))
    log.info(
        "%s: %s authenticated with %s (%s), certificate %s",
        sa.label, peer, auth.method.name, scheme, identities_in(ee)[0],
    )  # fmt: skip
    return ee
