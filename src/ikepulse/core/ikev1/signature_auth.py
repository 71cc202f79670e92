"""Phase 1 authenticated with signatures (RFC 2409 §5.1; RFC 4754 §3 for ECDSA).

SKEYID = prf(Ni_b | Nr_b, g^xy); HASH_I and HASH_R are computed as with a pre-shared key
(under ``phase1_auth_prf``: strongSwan takes HMAC-SHA2 of the curve's size for ECDSA), but
each side sends its certificates (CERT, RFC 2408 §3.9) and its HASH signed (SIG, §3.12)
instead of the HASH. CR payloads (§3.10) name the CAs we trust by subject DN, as strongSwan's
do: the initiator sends them in MM5 / AM1, the responder in MM4 / AM2 (strongSwan only sends
its certificate when asked). The peer's certificate goes through ``pubkey_auth``: the same
chain, key and identity checks as IKEv2's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ...crypto.algid import SignatureError
from ...crypto.ikev1_sig import ECDSA_CURVES, RSA_METHODS, v1_sign, v1_verify
from ...crypto.signature import PrivateKey, PublicKey, key_kind
from ...wire.enums import CertEncoding
from ...wire.isakmp import PayloadChain
from ...wire.isakmp_enums import AuthMethodV1
from ...wire.isakmp_payloads import CertReqV1, CertV1, SigV1
from .. import pubkey_auth
from ..connection import AuthClass, ConnectionConfig, Identity
from ..errors import AuthenticationFailed, NoProposalChosen

if TYPE_CHECKING:
    from ..hosts import IsakmpHost

log = logging.getLogger(__name__)

SIGNATURE_METHODS = RSA_METHODS | frozenset(ECDSA_CURVES)
_CURVE_METHODS = {curve: method for method, (curve, _) in ECDSA_CURVES.items()}


def auth_method(connection: ConnectionConfig) -> AuthMethodV1:
    """The authentication method of our ISAKMP transforms (RFC 2409 App. A): PSK, or the
    one our private key signs with, as strongSwan picks it (RSA, ECDSA by curve)."""
    if connection.local_auth is not AuthClass.PUBKEY:
        return AuthMethodV1.PSK
    key = connection.local_pubkey.key
    method = v1_method_of(key)
    if method is not None:
        return method
    raise NoProposalChosen(
        f"IKEv1 cannot authenticate with a {key_kind(key)} key (RSA or ECDSA P-256/384/521)"
    )


def v1_method_of(key: PrivateKey) -> AuthMethodV1 | None:
    """RSA_SIG for an RSA key, ECDSA_256/384/521 for one on that curve, else None."""
    if isinstance(key, rsa.RSAPrivateKey):
        return AuthMethodV1.RSA_SIG
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _CURVE_METHODS.get(key.curve.name)
    return None


def uses_signatures(method: AuthMethodV1) -> bool:
    return method in SIGNATURE_METHODS


def certreqs(connection: ConnectionConfig, method: AuthMethodV1) -> list[CertReqV1]:
    """One CR per CA we trust for the peer, naming its subject (RFC 2408 §3.10)."""
    trust = connection.remote_trust
    if not uses_signatures(method) or trust is None:
        return []
    encoding = CertEncoding.X509_SIGNATURE
    return [CertReqV1(encoding, ca.subject.public_bytes()) for ca in trust.cacerts]


def proof(connection: ConnectionConfig, method: AuthMethodV1, hash_value: bytes) -> list:
    """Our CERT payloads (end entity, then intermediates) and SIG over our HASH (§5.1)."""
    local = connection.local_pubkey
    if local is None:
        raise AuthenticationFailed(f"{method.name} needs local.auth = pubkey and certificates")
    certs = [CertV1(p.encoding, p.data) for p in pubkey_auth.cert_payloads(local, None)]
    try:
        signature = v1_sign(local.key, method, hash_value)
    except SignatureError as exc:
        raise AuthenticationFailed(f"cannot sign our HASH with {method.name}: {exc}") from None
    return [*certs, SigV1(signature)]


def check(
    sa: IsakmpHost,
    connection: ConnectionConfig,
    peer: Identity,
    chain: PayloadChain,
    method: AuthMethodV1,
    hash_value: bytes,
    now: float,
) -> x509.Certificate:
    """The peer's end-entity certificate, once its SIG over ``hash_value`` (the HASH we
    computed for it), its chain to ``remote_trust`` and its identity check out."""
    trust = connection.remote_trust
    if trust is None:
        raise AuthenticationFailed(f"{peer} signs with {method.name}; remote.auth is not pubkey")
    sig = chain.first(SigV1)
    if sig is None:
        raise AuthenticationFailed(f"{peer} sent no SIG payload ({method.name} was agreed)")
    ders = [c.data for c in chain.all(CertV1) if c.encoding == CertEncoding.X509_SIGNATURE]
    certs = pubkey_auth.load_certificates(ders, peer)

    def verify(key: PublicKey) -> None:
        v1_verify(key, method, sig.data, hash_value)

    at = pubkey_auth.wall_clock(sa, now)
    pubkey_auth.check_certified(trust, peer, certs, at, verify, what="SIG")
    log.info("%s: %s authenticated with %s, certificate %s", sa.label, peer, method.name,
             certs[0].subject.rfc4514_string())  # fmt: skip
    return certs[0]
