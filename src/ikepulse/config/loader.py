"""Load and validate the TOML configuration into the core's frozen config objects.

Every problem is reported as ``FILE: key.path: what is wrong``; secrets never appear in
messages.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..core.connection import ConnectionConfig, Identity
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
    for name, section in parsed.connections.items():
        try:
            connections.append(_connection(name, section, parsed.secrets, path))
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


def _connection(
    name: str, section: ConnectionSection, secrets: dict[str, SecretSection], path: str
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
        if local_text is None:
            raise ConfigError("local.id: needed when local_addrs has no single address")
        local_id = _identity(local_text, "local.id")
        remote_id = _identity(section.remote.id, "remote.id") if section.remote.id else None
    except ConfigError as exc:
        raise ConfigError(f"{prefix}.{exc}") from None
    psk = _find_secret(local_id, remote_id, secrets, path)
    if psk is None:
        raise ConfigError(
            f"{prefix}: no [secrets] entry matches ids {local_id} and {remote_id or '%any'}"
        )
    return connection_from(
        name,
        section,
        local_id=local_id,
        remote_id=remote_id,
        psk=psk,
        proposals=proposals,
        children=children,
    )


def _find_secret(
    local: Identity, remote: Identity | None, secrets: dict[str, SecretSection], path: str
) -> bytes | None:
    """The best matching secret, as strongSwan ranks them: both ids, one id, no ids."""
    best, best_score = None, -1
    for name, entry in secrets.items():
        ids = {_identity(i, f"secrets.{name}.ids") for i in entry.ids}
        if ids and not ids & {local, remote}:
            continue
        score = len(ids & {local, remote}) if ids else 0
        if score > best_score:
            best, best_score = (name, entry), score
    if best is None:
        return None
    name, entry = best
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
