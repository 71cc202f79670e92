"""X.509 path validation for IKE peers (RFC 7296 §3.6, RFC 4945 §5, RFC 5280 §6).

Chains of RSA and ECDSA keys go through pyca's ``x509.verification`` with extension
policies that admit IKE certificates (no SAN needed, EKU optional). Its web PKI policy
refuses EdDSA keys, so chains with one are checked on pyca primitives: each link's
issuer name and signature (``verify_directly_issued_by``) and validity. Both paths then
apply the IKE constraints below, and revocation from CRL files as swanctl's
``revocation = strict | ifuri | relaxed``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .cert_ids import dn_text, rdns_of_name
from .errors import CryptoError

MAX_DEPTH = 8
IKE_EKUS = frozenset(
    {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.IPSEC_IKE,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        ObjectIdentifier("1.3.6.1.5.5.8.2.2"),  # iKEIntermediate (RFC 4945 §5.1.3.12)
    }
)
"""An end-entity EKU must list one of these, if it has the extension at all."""


class CertificateError(CryptoError):
    """A certificate or chain that does not validate; the message says why."""


class Revocation(Enum):
    """swanctl.conf ``revocation``: what a missing or stale CRL means."""

    STRICT = "strict"
    """Refuse unless a current CRL from the issuer says good."""
    IFURI = "ifuri"
    """Refuse when the certificate names a CRL distribution point we have no current CRL for."""
    RELAXED = "relaxed"
    """Only a CRL that lists the certificate refuses it."""


@dataclass(frozen=True, slots=True)
class Trust:
    """Trust anchors and revocation data for one connection's peer (``remote.cacerts``)."""

    cacerts: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]
    revocation: Revocation


def spki_sha1(cert: x509.Certificate) -> bytes:
    """SHA-1 of the SubjectPublicKeyInfo: a CA as CERTREQ names it (§3.7)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).digest()


def describe(cert: x509.Certificate) -> str:
    """A certificate for messages: its subject as strongSwan writes DNs."""
    return dn_text(rdns_of_name(cert.subject)) or f"serial {cert.serial_number:x}"


def _eku_ok(policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is not None and not IKE_EKUS & set(eku):
        names = ", ".join(getattr(o, "_name", o.dotted_string) for o in eku)
        raise CertificateError(f"extended key usage ({names}) is not for IKE")


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _constraints(chain: list[x509.Certificate]) -> None:
    """End entity: keyUsage digitalSignature (or nonRepudiation), an IKE EKU; issuers: CA
    basicConstraints, keyCertSign, pathLenConstraint (RFC 5280 §4.2.1.3, §4.2.1.9)."""
    ee = chain[0]
    usage = _key_usage(ee)
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise CertificateError(f"{describe(ee)}: key usage does not allow signatures")
    try:
        _eku_ok(None, ee, ee.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        pass
    for depth, ca in enumerate(chain[1:]):
        try:
            basic = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise CertificateError(f"{describe(ca)} is not a CA (no basicConstraints)") from None
        if not basic.ca:
            raise CertificateError(f"{describe(ca)} is not a CA")
        if basic.path_length is not None and depth > basic.path_length:
            raise CertificateError(
                f"{describe(ca)}: path length {depth} exceeds its constraint {basic.path_length}"
            )
        usage = _key_usage(ca)
        if usage is not None and not usage.key_cert_sign:
            raise CertificateError(f"{describe(ca)}: key usage does not allow keyCertSign")


def _valid_at(cert: x509.Certificate, at: dt.datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateError(
            f"{describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S}"
        )
    if at > cert.not_valid_after_utc:
        raise CertificateError(
            f"{describe(cert)} expired {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}"
        )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _primitive_path(
    ee: x509.Certificate, intermediates: list[x509.Certificate], trust: Trust, at: dt.datetime
) -> list[x509.Certificate]:
    chain, current = [ee], ee
    for _ in range(MAX_DEPTH):
        _valid_at(current, at)
        for anchor in trust.cacerts:
            if anchor.subject == current.issuer and _issued_by(current, anchor):
                if anchor is not current:
                    _valid_at(anchor, at)
                    chain.append(anchor)
                return chain
        for issuer in intermediates:
            if issuer not in chain and issuer.subject == current.issuer:
                if _issued_by(current, issuer):
                    chain.append(issuer)
                    current = issuer
                    break
        else:
            if any(a.subject == current.issuer for a in trust.cacerts):
                raise CertificateError(f"signature of {describe(current)} does not verify")
            raise CertificateError(f"{describe(current)}: issuer is not a trusted CA")
    raise CertificateError(f"no path to a trusted CA within {MAX_DEPTH} certificates")


def _pyca_path(
    ee: x509.Certificate, intermediates: list[x509.Certificate], trust: Trust, at: dt.datetime
) -> list[x509.Certificate]:
    agnostic = verification.Criticality.AGNOSTIC
    ee_policy = verification.ExtensionPolicy.permit_all().may_be_present(
        x509.ExtendedKeyUsage, agnostic, _eku_ok
    )
    ca_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, agnostic, None
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trust.cacerts)))
        .time(at)
        .max_chain_depth(MAX_DEPTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(ee, intermediates).chain)
    except verification.VerificationError as exc:
        # pyca's messages are thorough but long; the primitive walk names the failing link.
        try:
            _primitive_path(ee, intermediates, trust, at)
        except CertificateError as precise:
            raise precise from None
        raise CertificateError(f"{describe(ee)}: {exc}") from None


def _eddsa(cert: x509.Certificate) -> bool:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)


def _check_revocation(chain: list[x509.Certificate], trust: Trust, at: dt.datetime) -> None:
    for cert, issuer in zip(chain, chain[1:], strict=False):
        crls = [
            crl
            for crl in trust.crls
            if crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())
        ]
        for crl in crls:
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise CertificateError(f"{describe(cert)} is revoked (CRL of {describe(issuer)})")
        current = [
            c
            for c in crls
            if c.last_update_utc <= at and (c.next_update_utc is None or at <= c.next_update_utc)
        ]
        if current or trust.revocation is Revocation.RELAXED:
            continue
        if trust.revocation is Revocation.STRICT:
            raise CertificateError(f"no current CRL from {describe(issuer)} (revocation = strict)")
        try:
            cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        except x509.ExtensionNotFound:
            continue
        raise CertificateError(
            f"{describe(cert)} names a CRL distribution point and we hold no current CRL "
            "from its issuer (revocation = ifuri)"
        )


def validate(
    ee: x509.Certificate, intermediates: list[x509.Certificate], trust: Trust, at: dt.datetime
) -> list[x509.Certificate]:
    """The chain from ``ee`` to one of ``trust.cacerts`` (inclusive), valid at ``at``,
    or CertificateError saying which certificate fails and why."""
    if not trust.cacerts:
        raise CertificateError("no CA certificates configured for the peer")
    everything = [ee, *intermediates, *trust.cacerts]
    if any(_eddsa(cert) for cert in everything):
        chain = _primitive_path(ee, intermediates, trust, at)
    else:
        chain = _pyca_path(ee, intermediates, trust, at)
    _constraints(chain)
    _check_revocation(chain, trust, at)
    return chain
