"""Certificates, CRLs and private keys named in the configuration, read and checked.

Every problem names the file and the key path that points at it, like the rest of the
loader. ``check_at`` (``ikepulse check-config``) also checks our certificates against the
clock and the configured CAs, as the peer will.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from ..core.connection import LocalPubkey
from ..crypto.algid import SignatureError
from ..crypto.certs import CertificateError, Revocation, Trust, validate
from ..crypto.signature import (
    PrivateKey,
    keys_match,
    load_certificates,
    load_private_key,
    public_key_of,
)
from .schema import AuthSection, SecretSection


class CredentialError(ValueError):
    """One problem with a credential file: ``key.path: file: what``."""


def _read(file: str, key: str) -> bytes:
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise CredentialError(f"{key}: cannot read {file}: {exc.strerror or exc}") from None


def _certs(files: list[str], key: str) -> list[tuple[str, str, x509.Certificate]]:
    """(key path, file, certificate) for every certificate in ``files``."""
    out = []
    for i, file in enumerate(files):
        where = f"{key}[{i}]"
        try:
            certs = load_certificates(_read(file, where))
            for cert in certs:
                public_key_of(cert)
        except SignatureError as exc:
            raise CredentialError(f"{where}: {file}: {exc}") from None
        out.extend((where, file, cert) for cert in certs)
    return out


class PrivateKeys:
    """The ``private_key`` entries of ``[secrets]``, each read once."""

    def __init__(self, secrets: dict[str, SecretSection]) -> None:
        self._secrets = secrets
        self._keys: list[tuple[str, PrivateKey]] | None = None

    def all(self) -> list[tuple[str, PrivateKey]]:
        if self._keys is None:
            self._keys = []
            for name, entry in self._secrets.items():
                if entry.private_key is None:
                    continue
                where = f"secrets.{name}.private_key"
                data = _read(entry.private_key, where)
                try:
                    self._keys.append((where, load_private_key(data)))
                except SignatureError as exc:
                    raise CredentialError(f"{where}: {entry.private_key}: {exc}") from None
        return self._keys

    def for_certificate(self, cert: x509.Certificate) -> PrivateKey | None:
        return next((key for _, key in self.all() if keys_match(key, cert)), None)


def local_pubkey(section: AuthSection, keys: PrivateKeys) -> LocalPubkey:
    """``local.certs`` and the private key of its first certificate."""
    if not section.certs:
        raise CredentialError(f'local.certs: needed with auth = "{section.auth}"')
    certs = _certs(section.certs, "local.certs")
    where, file, ee = certs[0]
    key = keys.for_certificate(ee)
    if key is None:
        raise CredentialError(
            f"{where}: {file}: no [secrets] private_key matches this certificate's public key"
        )
    return LocalPubkey(tuple(c for _, _, c in certs), key, section.auth == "rsa/pss")


def remote_trust(section: AuthSection) -> Trust:
    """``remote.cacerts``, ``remote.crls`` and ``remote.revocation``."""
    if not section.cacerts:
        raise CredentialError(f'remote.cacerts: needed with auth = "{section.auth}"')
    cacerts = tuple(c for _, _, c in _certs(section.cacerts, "remote.cacerts"))
    crls = []
    for i, file in enumerate(section.crls):
        data = _read(file, f"remote.crls[{i}]")
        try:
            if b"-----BEGIN" in data:
                crls.append(x509.load_pem_x509_crl(data))
            else:
                crls.append(x509.load_der_x509_crl(data))
        except ValueError as exc:
            raise CredentialError(f"remote.crls[{i}]: {file}: not a CRL ({exc})") from None
    return Trust(cacerts, tuple(crls), Revocation(section.revocation))


def unused_side_keys(section: AuthSection, side: str) -> None:
    """``certs`` belongs to ``local``, the CA keys to ``remote``, both only with pubkey."""
    wrong = ("cacerts", "crls") if side == "local" else ("certs",)
    for key in wrong:
        if getattr(section, key):
            raise CredentialError(f"{side}.{key}: not used on the {side} side")
    if not section.pubkey:
        for key in ("certs", "cacerts", "crls"):
            if getattr(section, key):
                raise CredentialError(f'{side}.{key}: only used with auth = "pubkey"')


def check_at(
    local: AuthSection, remote: AuthSection, all_cacerts: list[x509.Certificate], at: dt.datetime
) -> list[str]:
    """Problems the peer would find with our certificates (expired, not yet valid, no chain
    to a configured CA) and expired CA certificates of ours, each naming its file."""
    problems = []
    if local.pubkey and local.certs:
        certs = _certs(local.certs, "local.certs")
        where, file, ee = certs[0]
        anchors = tuple(all_cacerts) or tuple(c for _, _, c in certs[1:])
        if anchors:
            trust = Trust(anchors, (), Revocation.RELAXED)
            try:
                validate(ee, [c for _, _, c in certs[1:]], trust, at)
            except CertificateError as exc:
                problems.append(f"{where}: {file}: {exc}")
        elif at > ee.not_valid_after_utc or at < ee.not_valid_before_utc:
            problems.append(f"{where}: {file}: not valid now")
    if remote.pubkey:
        for where, file, ca in _certs(remote.cacerts, "remote.cacerts"):
            if at > ca.not_valid_after_utc:
                problems.append(f"{where}: {file}: expired {ca.not_valid_after_utc:%Y-%m-%d}")
    return problems
