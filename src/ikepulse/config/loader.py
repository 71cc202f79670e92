"""Load and validate the TOML configuration into the core's frozen config objects.

Every problem is reported as ``FILE: key.path: what is wrong``; secrets never appear in
messages.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..core.connection import ConnectionConfig, Credentials, Identity, Secret
from .build import child_from, connection_from
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


def load_config(path: str | Path) -> Settings:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_config(text, str(path))


def parse_config(text: str, path: str = "<string>") -> Settings:
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
    for name, section in parsed.connections.items():
        try:
            connections.append(_connection(name, section, credentials, path))
        except ConfigError as exc:
            problems.append(str(exc))
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


def _connection(
    name: str, section: ConnectionSection, credentials: Credentials, path: str
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
        local_text = section.local.id or next(
            (a for a in section.local_addrs if a != "%any" and "/" not in a), None
        )
        if local_text is None or local_text == "%any":
            raise ConfigError("local.id: needed when local_addrs has no single address")
        local_id = _identity(local_text, "local.id")
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
    )


def _credentials(secrets: dict[str, SecretSection], path: str) -> Credentials:
    """Every ``[secrets]`` entry; a name starting with ``eap`` is an EAP password."""
    shared, eap = [], []
    for name, entry in secrets.items():
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
