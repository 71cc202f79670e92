"""Certificates for lab peers made with strongSwan's ``pki`` tool (package strongswan-pki),
and the configuration snippets that use them on both sides (swanctl.conf and ikepulse).

swanctl loads certificates and keys from ``x509/``, ``x509ca/`` and ``private/`` next to the
swanctl.conf it loads (LAB.md); ``install_for_charon`` puts them there.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KINDS = {
    "rsa2048": ("rsa", "2048", "pkcs1"),
    "rsa2048-pss": ("rsa", "2048", "pss"),
    "ecdsa256": ("ecdsa", "256", "pkcs1"),
    "ecdsa384": ("ecdsa", "384", "pkcs1"),
    "ed25519": ("ed25519", "", "pkcs1"),
}
"""The key types every certificate test runs with."""
KEY_TYPES = {**KINDS, "rsa4096": ("rsa", "4096", "pkcs1")}
"""What ``LabPki`` can make: also large keys, for chains that need IKE fragmentation."""


def _pki(*args: str) -> bytes:
    result = subprocess.run(["pki", *args], capture_output=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"pki {' '.join(args)}: {result.stderr.decode()[-500:]}")
    return result.stdout


@dataclass(frozen=True)
class Pem:
    """A certificate file and its key file."""

    cert: Path
    key: Path
    dn: str
    padding: str = "pkcs1"
    """How this key signs the certificates it issues (RSA: pkcs1 or pss)."""


class LabPki:
    """A directory of CAs and end-entity certificates, all PEM."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def key(self, name: str, kind: str) -> Path:
        key_type, size, _ = KEY_TYPES[kind]
        path = self.dir / f"{name}.key"
        args = ["--gen", "--type", key_type, "--outform", "pem"]
        path.write_bytes(_pki(*args, *(["--size", size] if size else [])))
        return path

    def ca(self, name: str, dn: str, kind: str = "ecdsa256") -> Pem:
        key = self.key(name, kind)
        cert = self.dir / f"{name}.pem"
        padding = KEY_TYPES[kind][2]
        cert.write_bytes(
            _pki("--self", "--ca", "--in", str(key), "--dn", dn, "--lifetime", "30",
                 "--rsa-padding", padding, "--outform", "pem")
        )  # fmt: skip
        return Pem(cert, key, dn, padding)

    def issue(
        self, issuer: Pem, name: str, dn: str, kind: str, *, san: str = "", ca: bool = False
    ) -> Pem:
        key = self.key(name, kind)
        cert = self.dir / f"{name}.pem"
        args = ["--issue", "--in", str(key), "--type", "priv", "--cacert", str(issuer.cert),
                "--cakey", str(issuer.key), "--dn", dn, "--lifetime", "30",
                "--rsa-padding", issuer.padding, "--outform", "pem"]  # fmt: skip
        args += ["--ca"] if ca else ["--flag", "serverAuth"]
        if san:
            args += ["--san", san]
        cert.write_bytes(_pki(*args))
        return Pem(cert, key, dn, KEY_TYPES[kind][2])


def crl(directory: Path, issuer: Pem, revoked: list[Pem]) -> Path:
    """A CRL from ``issuer`` revoking ``revoked`` (``pki --signcrl``)."""
    path = directory / f"{issuer.cert.stem}.crl"
    args = ["--signcrl", "--cacert", str(issuer.cert), "--cakey", str(issuer.key),
            "--lifetime", "7", "--outform", "pem"]  # fmt: skip
    for pem in revoked:
        args += ["--cert", str(pem.cert)]
    path.write_bytes(_pki(*args))
    return path


def install_for_charon(workdir: Path, own: list[Pem], cas: list[Path]) -> None:
    """Our certificate(s) in ``x509/`` (intermediates too; none for an EAP client), the key
    of the first in ``private/``, trusted CAs in ``x509ca/``, beside the swanctl.conf in
    ``workdir``."""
    for sub in ("x509", "x509ca", "private"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    for pem in own:
        shutil.copy(pem.cert, workdir / "x509" / pem.cert.name)
    if own:
        shutil.copy(own[0].key, workdir / "private" / own[0].key.name)
    for ca in cas:
        shutil.copy(ca, workdir / "x509ca" / ca.name)


def swanctl_auth(own: Pem, remote_id: str, *, pss: bool = False, remote_ca: Path | None = None):
    """The ``local`` and ``remote`` sections of a swanctl connection for certificates."""
    cacerts = f"\n      cacerts = {remote_ca.name}" if remote_ca else ""
    return f"""local {{
      auth = {"rsa/pss" if pss else "pubkey"}
      certs = {own.cert.name}
      id = "{own.dn}"
    }}
    remote {{
      auth = pubkey
      id = "{remote_id}"{cacerts}
    }}"""


def ikepulse_auth(
    own: list[Pem],
    remote_id: str,
    cacerts: list[Path],
    *,
    pss: bool = False,
    crls: list[Path] = (),
    revocation: str = "relaxed",
) -> tuple[str, str]:
    """ikepulse's ``local``/``remote`` lines and its ``[secrets]`` entry for certificates."""
    certs = ", ".join(f'"{p.cert}"' for p in own)
    cas = ", ".join(f'"{c}"' for c in cacerts)
    crl_list = ", ".join(f'"{c}"' for c in crls)
    auth = "rsa/pss" if pss else "pubkey"
    lines = (
        f'local = {{ auth = "{auth}", id = "{own[0].dn}", certs = [{certs}] }}\n'
        f'remote = {{ auth = "pubkey", id = "{remote_id}", cacerts = [{cas}], '
        f'crls = [{crl_list}], revocation = "{revocation}" }}\n'
    )
    secrets = f'[secrets.own-key]\nprivate_key = "{own[0].key}"\n'
    return lines, secrets


def swanctl_with_certs(conf: str, auth: str) -> str:
    """A ``swanctl_conf`` text with its PSK ``local``/``remote`` sections replaced."""
    start = conf.index("local {")
    end = conf.index("children {")
    return conf[:start] + auth + "\n    " + conf[end:]


def ikepulse_with_certs(conf: str, lines: str, secrets: str) -> str:
    """An ``ikepulse_conf`` text with its PSK ``local``/``remote`` lines replaced."""
    start = conf.index("local = {")
    end = conf.index("\n", conf.index("remote = {")) + 1
    return conf[:start] + lines + conf[end:] + "\n" + secrets
