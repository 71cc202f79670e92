"""Test certificate authorities made with pyca: CAs, intermediates, end entities, CRLs.

Used by the unit, sim and lab tests and the benches; never by the daemon.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..crypto.cert_ids import parse_dn

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
"""The moment test certificates are made around."""

KEY_TYPES = ("rsa2048", "rsa2048-pss", "ecdsa256", "ecdsa384", "ecdsa521", "ed25519")


def new_key(kind: str, public_exponent: int = 65537):
    """A private key: ``rsa2048`` (also ``-pss``), ``rsa3072``, ``ecdsa256/384/521``,
    ``ed25519``."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent, int(kind[3:7]))
    if kind.startswith("ecdsa"):
        curve = {"256": ec.SECP256R1, "384": ec.SECP384R1, "521": ec.SECP521R1}[kind[5:]]
        return ec.generate_private_key(curve())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {kind}")


def signing_hash(key):
    """The hash a CA key signs certificates and CRLs with (None for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


@dataclass
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: object

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def issue(self, subject: str, key, **kwargs) -> Issued:
        """A certificate for ``key`` signed by this one (see ``certificate``)."""
        return Issued(certificate(subject, key, self, **kwargs), key)


def certificate(
    subject: str,
    key,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    san: tuple[x509.GeneralName, ...] | list[str] = (),
    eku: tuple = (),
    key_usage: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    serial: int | None = None,
    pss: bool = False,
) -> x509.Certificate:
    """A certificate for ``subject`` (strongSwan DN order); self-signed without ``issuer``.
    ``san`` strings become DNS names, ``user@host`` RFC 822 names or IP addresses."""
    name = parse_dn(subject)
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=30))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    usage = key_usage or ("cert_sign" if ca else "signature")
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=usage == "signature",
            content_commitment=False,
            key_encipherment=usage == "encipherment",
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=usage == "cert_sign",
            crl_sign=usage == "cert_sign",
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    names = [_general_name(n) if isinstance(n, str) else n for n in san]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if pss and isinstance(signer, rsa.RSAPrivateKey):
        scheme = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        return builder.sign(signer, hashes.SHA256(), rsa_padding=scheme)
    return builder.sign(signer, signing_hash(signer))


def _general_name(text: str) -> x509.GeneralName:
    import ipaddress

    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    return x509.RFC822Name(text) if "@" in text else x509.DNSName(text)


def ca(subject: str, kind: str = "ecdsa256", **kwargs) -> Issued:
    """A self-signed root CA."""
    key = new_key(kind)
    return Issued(certificate(subject, key, ca=True, **kwargs), key)


def crl(issuer: Issued, revoked: tuple[int, ...] = (), next_update: dt.datetime | None = None):
    """A CRL from ``issuer`` listing the ``revoked`` serial numbers."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(NOW - dt.timedelta(days=1))
        .next_update(next_update or NOW + dt.timedelta(days=7))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - dt.timedelta(days=1))
            .build()
        )
    return builder.sign(issuer.key, signing_hash(issuer.key))


SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


LEFT_DN, RIGHT_DN = "C=CH, O=test, CN=left.example", "C=CH, O=test, CN=right.example"


def cert_peers(
    root: Issued,
    kind: str,
    *,
    ike: str = "aes256gcm16-prfsha256-x25519",
    seed: int = 1,
    issued: dict | None = None,
):
    """Two in-memory peers (``testing.loopback``) that authenticate with ``kind``
    certificates from ``root``, their clocks at ``NOW``. Returns (left, right, clock).
    ``issued`` keeps the certificates made for reuse by the next call."""
    import random

    from ..core.connection import LocalPubkey
    from ..core.sa_manager import SaManager
    from ..crypto.certs import Revocation, Trust
    from .loopback import LEFT, LEFT_NET, RIGHT, RIGHT_NET, Clock, Peer, connection

    clock = Clock()
    offset = NOW.timestamp() - clock.now
    trust = Trust((root.cert,), (), Revocation.RELAXED)
    sides = []
    for own, other, nets in ((LEFT_DN, RIGHT_DN, (LEFT_NET, RIGHT_NET)),
                             (RIGHT_DN, LEFT_DN, (RIGHT_NET, LEFT_NET))):  # fmt: skip
        if issued is None or own not in issued:
            made = root.issue(own, new_key(kind.removesuffix("-pss")))
            if issued is not None:
                issued[own] = made
        else:
            made = issued[own]
        creds = LocalPubkey((made.cert,), made.key, kind.endswith("-pss"))
        sides.append(connection(own, other, *nets, ike=ike, local_pubkey=creds, remote_trust=trust))
    a = Peer(SaManager([sides[0]], random.Random(seed), wall_offset=offset), LEFT)
    b = Peer(SaManager([sides[1]], random.Random(seed + 1), wall_offset=offset), RIGHT)
    return a, b, clock
