"""Load and validate the TOML configuration into the core's frozen config objects.

Every problem is reported as ``FILE: key.path: what is wrong``; secrets never appear in
messages.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..core.admission import AdmissionPolicy
from ..core.connection import ConnectionConfig, Credentials, Identity, Secret
from ..core.ikev1.signature_auth import v1_method_of
from ..crypto.cert_ids import identities_in, in_certificate
from ..crypto.signature import key_kind
from ..wire.enums import IdType
from .build import admission_from, child_from, connection_from
from .credentials import (
    CredentialError,
    PrivateKeys,
    check_at,
    local_pubkey,
    remote_trust,
    unused_side_keys,
)
from .proposals import (
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    ProposalError,
    parse_esp_proposal,
    parse_ike_proposal,
)
from .schema import ConfigFile, ConnectionSection, SecretSection


class ConfigError(ValueError):
    """A configuration problem, one line per problem, naming the file and the key."""


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    control_socket: str
    ike_port: int
    natt_port: int
    listen: tuple[str, ...]
    log_level: str
    state_dir: str
    """Where state that must survive a restart lives (the QCD secret, RFC 6290)."""
    metrics_listen: str | None
    """``host:port`` of the Prometheus endpoint; None: no endpoint."""
    save_keys: str | None
    """Directory for the Wireshark key tables, None when not exporting keys."""
    offload: bool
    """TUN segmentation and coalescing offloads (runtime/offload.py)."""
    admission: AdmissionPolicy | None = None
    """Limits on half-open IKE SAs (None: the schema's defaults)."""


@dataclass(frozen=True, slots=True)
class Settings:
    daemon: DaemonSettings
    connections: tuple[ConnectionConfig, ...]
    path: str


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    msg = error["msg"]
    return msg.removeprefix("Value error, ")


def load_config(path: str | Path, check_at: dt.datetime | None = None) -> Settings:
    """The configuration at ``path``; with ``check_at`` also our certificates' validity and
    chains at that time (``ikepulse check-config``)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_config(text, str(path), check_at)


def parse_config(
    text: str, path: str = "<string>", check_at: dt.datetime | None = None
) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax: {exc}") from None
    try:
        parsed = ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = [f"{path}: {_key_path(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(problems)) from None
    problems: list[str] = []
    connections = []
    try:
        credentials = _credentials(parsed.secrets, path)
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None
    keys = PrivateKeys(parsed.secrets)
    for name, section in parsed.connections.items():
        try:
            connections.append(_connection(name, section, credentials, keys, path))
        except ConfigError as exc:
            problems.append(str(exc))
    if check_at is not None and not problems:
        problems.extend(_check_credentials(parsed, check_at, path))
    if problems:
        raise ConfigError("\n".join(problems))
    daemon = parsed.daemon
    listen = (
        tuple(daemon.listen)
        or tuple(
            dict.fromkeys(
                a for c in connections for a in c.local_addrs if "/" not in a and a != "%any"
            )
        )
        or ("0.0.0.0",)
    )
    settings = DaemonSettings(
        daemon.control_socket,
        daemon.ike_port,
        daemon.natt_port,
        listen,
        daemon.log_level,
        daemon.state_dir,
        metrics_listen=daemon.metrics_listen,
        save_keys=daemon.save_keys,
        admission=admission_from(daemon),
        offload=daemon.offload,
    )
    return Settings(settings, tuple(connections), path)


def _proposals(texts, parse, default, key: str):
    if texts is None:
        return default
    out = []
    for i, text in enumerate(texts):
        for part in text.split(","):
            if part.strip() == "default":
                out.extend(default)
                continue
            try:
                out.append(parse(part.strip()))
            except ProposalError as exc:
                raise ConfigError(f"{key}[{i}]: {exc}") from None
    return tuple(out)


def _identity(text: str, key: str) -> Identity:
    try:
        return Identity.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _optional_identity(text: str | None, key: str) -> Identity | None:
    """An identity or pattern; ``%any`` (or nothing) is None."""
    return None if text in (None, "%any") else _identity(text, key)


def _check_credentials(parsed: ConfigFile, at: dt.datetime, path: str) -> list[str]:
    cacerts = []
    for section in parsed.connections.values():
        if section.remote.pubkey:
            cacerts.extend(c for c in remote_trust(section.remote).cacerts)
    return [
        f"{path}: connections.{name}.{problem}"
        for name, section in parsed.connections.items()
        for problem in check_at(section.local, section.remote, cacerts, at)
    ]


def _certificates(section: ConnectionSection, keys: PrivateKeys):
    """(our certificates and key, the peer's CAs), None for a side without certificates."""
    unused_side_keys(section.local, "local")
    unused_side_keys(section.remote, "remote")
    local = local_pubkey(section.local, keys) if section.local.pubkey else None
    remote = remote_trust(section.remote) if section.remote.pubkey else None
    return local, remote


def _connection(
    name: str,
    section: ConnectionSection,
    credentials: Credentials,
    keys: PrivateKeys,
    path: str,
) -> ConnectionConfig:
    prefix = f"{path}: connections.{name}"
    try:
        proposals = _proposals(
            section.proposals, parse_ike_proposal, DEFAULT_IKE_PROPOSALS, "proposals"
        )
        children = tuple(
            child_from(
                child_name,
                child,
                _proposals(
                    child.esp_proposals,
                    parse_esp_proposal,
                    DEFAULT_ESP_PROPOSALS,
                    f"children.{child_name}.esp_proposals",
                ),
            )
            for child_name, child in section.children.items()
        )
        try:
            ours, trust = _certificates(section, keys)
        except CredentialError as exc:
            raise ConfigError(str(exc)) from None
        local_text = section.local.id or next(
            (a for a in section.local_addrs if a != "%any" and "/" not in a), None
        )
        if ours is not None and section.local.id is None:
            subject = ours.certs[0].subject.public_bytes()
            local_id = Identity(IdType.ID_DER_ASN1_DN, subject)  # strongSwan's default
        elif local_text is None or local_text == "%any":
            raise ConfigError("local.id: needed when local_addrs has no single address")
        else:
            local_id = _identity(local_text, "local.id")
        if ours is not None and not in_certificate(local_id.id_type, local_id.data, ours.certs[0]):
            names = "; ".join(identities_in(ours.certs[0]))
            raise ConfigError(
                f"local.id: {local_id} is not in {section.local.certs[0]} (it names {names})"
            )
        if ours is not None and section.version == 1 and v1_method_of(ours.key) is None:
            raise ConfigError(
                f"local.certs: IKEv1 cannot sign with the {key_kind(ours.key)} key of"
                f" {section.local.certs[0]} (RSA or ECDSA P-256/384/521)"
            )
        remote_id = _optional_identity(section.remote.id, "remote.id")
        local_eap_id = _optional_identity(section.local.eap_id, "local.eap_id")
        remote_eap_id = _optional_identity(section.remote.eap_id, "remote.eap_id")
    except ConfigError as exc:
        raise ConfigError(f"{prefix}.{exc}") from None
    psk = credentials.shared_key(local_id, remote_id)
    uses_psk = "psk" in (section.local.auth, section.remote.auth)
    if psk is None and uses_psk:
        raise ConfigError(
            f"{prefix}: no [secrets] entry matches ids {local_id} and {remote_id or '%any'}"
        )
    user = local_eap_id or local_id
    if section.local.auth.startswith("eap") and credentials.eap_password(user) is None:
        raise ConfigError(f"{prefix}: no [secrets.eap-*] entry with id {user} (local.auth)")
    return connection_from(
        name,
        section,
        local_id=local_id,
        remote_id=remote_id,
        psk=psk or b"",
        proposals=proposals,
        children=children,
        credentials=credentials,
        local_eap_id=local_eap_id,
        remote_eap_id=remote_eap_id,
        local_pubkey=ours,
        remote_trust=trust,
    )


def _credentials(secrets: dict[str, SecretSection], path: str) -> Credentials:
    """Every ``[secrets]`` entry; a name starting with ``eap`` is an EAP password."""
    shared, eap = [], []
    for name, entry in secrets.items():
        if entry.private_key is not None:
            if entry.secret is not None or entry.secret_file is not None:
                raise ConfigError(
                    f"{path}: secrets.{name}: a private_key entry holds no secret or secret_file"
                )
            continue
        texts = ([entry.id] if entry.id else []) + list(entry.ids)
        ids = tuple(_identity(text, f"secrets.{name}.ids") for text in texts)
        secret = Secret(ids, _secret_value(name, entry, path))
        if name.startswith("eap"):
            if not ids:
                raise ConfigError(f"{path}: secrets.{name}: an EAP secret needs id (the user)")
            eap.append(secret)
        else:
            shared.append(secret)
    return Credentials(tuple(shared), tuple(eap))


def _secret_value(name: str, entry: SecretSection, path: str) -> bytes:
    if (entry.secret is None) == (entry.secret_file is None):
        raise ConfigError(f"{path}: secrets.{name}: set exactly one of secret and secret_file")
    if entry.secret is not None:
        return entry.secret.encode()
    try:
        return Path(entry.secret_file).read_text().rstrip("\n").encode()
    except OSError as exc:
        raise ConfigError(
            f"{path}: secrets.{name}.secret_file: cannot read "
            f"{entry.secret_file}: {exc.strerror or exc}"
        ) from None
