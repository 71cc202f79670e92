"""The TOML schema, mirroring swanctl.conf: unknown keys are errors, values are checked."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> float:
    """``"2s"``, ``"500ms"``, ``"5m"``, ``"1h"``, ``"1d"``; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration such as "2s", got {value!r}')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value} is negative")
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f'{value!r} is not a duration (use e.g. "30s", "5m", "1h")')
    return float(match.group(1)) * _UNITS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]

_VOLUME = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")


def parse_volume(value: str | int) -> int:
    """A byte or packet count: ``1000``, ``"500k"``, ``"10M"``, ``"1G"`` (powers of 1024,
    as swanctl.conf reads them)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f'expected a count such as 1000 or "10M", got {value!r}')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"count {value} is negative")
        return value
    match = _VOLUME.match(str(value))
    if match is None:
        raise ValueError(f'{value!r} is not a count (use e.g. 100000, "500k", "10M")')
    count, unit = match.groups()
    return int(count) * 1024 ** ("", "k", "m", "g").index(unit.lower())


Volume = Annotated[int, BeforeValidator(parse_volume)]


def host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); port 0 means any free port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise ValueError(f"{text!r} is not host:port")
    return host.strip("[]"), int(port)


def _address_or_net(value: str) -> str:
    if value == "%any":
        return value
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address, subnet or %any") from None
    return value


def _selector(value: str) -> str:
    if value == "dynamic":
        return value
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a subnet (e.g. 203.0.113.0/26) or dynamic") from None
    return value


AddressList = list[Annotated[str, BeforeValidator(_address_or_net)]]
SelectorList = list[Annotated[str, BeforeValidator(_selector)]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DaemonSection(Strict):
    control_socket: str = "/run/ikepulse/control.sock"
    state_dir: str = "/var/lib/ikepulse"
    ike_port: int = Field(500, ge=1, le=65535)
    natt_port: int = Field(4500, ge=1, le=65535)
    listen: list[str] = []
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_listen: str | None = None
    """``host:port`` (``[v6]:port``) of the Prometheus endpoint; unset: no endpoint."""

    @field_validator("metrics_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, port = host_port(value)
            if port == 0:
                raise ValueError(f"{value!r} is not host:port")
            ipaddress.ip_address(host)
        return value

    offload: bool = False
    """TUN offloads for ESP. With a peer that is ikepulse with offload on too (private
    notify IKEPULSE_ESP_VNET), TSO super-packets travel whole in one ESP packet that the
    kernel fragments (esp/vnet.py); with any other peer they are split before sealing and
    decrypted segments coalesced into GSO writes (runtime/offload.py). Off by default:
    a path that drops IP fragments loses the whole super-packets, and with other peers the
    per-segment checksums in Python cost more than they save (bench/esp_throughput.py)."""
    save_keys: str | None = None
    """Directory to append IKE and ESP keys to, in Wireshark's tables (off when unset)."""
    cookie_threshold: int = Field(10, ge=0)
    """Half-open IKE SAs at which new IKE_SA_INIT must carry a cookie (RFC 7296 §2.6)."""
    half_open_limit: int = Field(1000, ge=1)
    """Half-open IKE SAs at most; a new one evicts the oldest."""
    half_open_per_source: int = Field(5, ge=1)
    """Half-open IKE SAs from one address at most."""
    half_open_timeout: Duration = Field(30.0, gt=0)
    """How long a half-open IKE SA waits for IKE_AUTH."""
    ike_sa_init_rate: float = Field(10.0, gt=0)
    """IKE_SA_INIT requests per second accepted from one address..."""
    ike_sa_init_burst: int = Field(20, ge=1)
    """...and at once."""
    cookie_secret_lifetime: Duration = Field(300.0, gt=0)
    """How often the cookie secret changes."""
    cookie_grace: Duration = Field(30.0, ge=0)
    """How long cookies made with the previous secret are still accepted."""

    @field_validator("listen")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_address(item)
        return value


PUBKEY_AUTHS = ("pubkey", "rsa", "ecdsa", "ed25519", "rsa/pss")
"""swanctl.conf's public-key ``auth`` values; ``rsa/pss`` signs with RSASSA-PSS."""
AUTH_METHODS = ("psk", *PUBKEY_AUTHS, "eap-mschapv2")


class AuthSection(Strict):
    auth: str = "psk"
    id: str | None = None
    """Our identity (local), or the peer's: an identity, a ``*`` pattern or ``%any``."""
    eap_id: str | None = None
    """EAP identity: ours as a client (default: ``id``); as a gateway, set (even to
    ``%any``) to ask the client for it with EAP-Identity and require this pattern."""
    certs: list[str] = []
    """local: our certificate (end entity first, then intermediates), PEM or DER files."""
    cacerts: list[str] = []
    """remote: CA certificates the peer's certificate must chain to."""
    crls: list[str] = []
    """remote: CRL files (PEM or DER) of those CAs."""
    revocation: Literal["strict", "ifuri", "relaxed"] = "relaxed"

    @field_validator("auth")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in AUTH_METHODS:
            raise ValueError(f"auth = {value!r} is not supported ({', '.join(AUTH_METHODS)})")
        return value

    @property
    def pubkey(self) -> bool:
        return self.auth in PUBKEY_AUTHS


class ChildSection(Strict):
    local_ts: SelectorList = ["dynamic"]
    remote_ts: SelectorList = ["dynamic"]
    esp_proposals: list[str] | None = None
    mode: Literal["tunnel", "transport"] = "tunnel"
    start_action: Literal["none", "trap", "start"] = "none"
    close_action: Literal["none", "trap", "start"] = "none"
    rekey_time: Duration = 3600.0
    life_time: Duration | None = None
    rand_time: Duration | None = None
    rekey_bytes: Volume = 0
    life_bytes: Volume | None = None
    rand_bytes: Volume | None = None
    rekey_packets: Volume = 0
    life_packets: Volume | None = None
    rand_packets: Volume | None = None
    updown: str | None = Field(None, min_length=1)
    updown_events: bool = False
    updown_timeout: Duration = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _lifetimes_in_order(self) -> ChildSection:
        """A hard limit past its rekey, a random part shorter than the rekey interval."""
        for kind in ("time", "bytes", "packets"):
            rekey = getattr(self, f"rekey_{kind}")
            life, rand = getattr(self, f"life_{kind}"), getattr(self, f"rand_{kind}")
            if rekey and life and life <= rekey:
                raise ValueError(
                    f"life_{kind} ({life:g}) must be greater than rekey_{kind} ({rekey:g}), "
                    "or the CHILD SA expires before it is rekeyed"
                )
            if rekey and rand is not None and rand >= rekey:
                raise ValueError(
                    f"rand_{kind} ({rand:g}) must be less than rekey_{kind} ({rekey:g})"
                )
        return self


class ConnectionSection(Strict):
    version: int = 2
    """1: IKEv1 (RFC 2409), 2: IKEv2, 0: either (initiate IKEv2, answer both), as swanctl."""
    aggressive: bool = False
    """IKEv1 Aggressive Mode (RFC 2409 §5.4) instead of Main Mode; with a PSK its hash can be
    cracked offline, so it is never used or accepted unless set."""
    local_addrs: AddressList = []
    remote_addrs: AddressList = []
    local_port: int = Field(500, ge=1, le=65535)
    remote_port: int = Field(500, ge=1, le=65535)
    proposals: list[str] | None = None
    start_action: Literal["none", "trap", "start"] = "none"
    unique: Literal["no", "never", "replace"] = "no"
    encap: bool = False
    mobike: bool = True
    local: AuthSection = AuthSection()
    remote: AuthSection = AuthSection()
    retransmit_timeout: Duration = 4.0
    retransmit_base: float = Field(1.8, ge=1.0)
    retransmit_tries: int = Field(5, ge=0, le=20)
    retransmit_jitter: float = Field(0.0, ge=0, le=100)
    dpd_delay: Duration = 30.0
    dpd_timeout: Duration = 15.0
    dpd_action: Literal["clear", "trap", "hold", "restart"] = "restart"
    """``trap`` is swanctl.conf's name, ``hold`` ipsec.conf's: both trap the selectors."""
    nat_keepalive: Duration = 20.0
    rekey_time: Duration = 14400.0
    reauth_time: Duration = 0.0
    over_time: Duration | None = None
    rand_time: Duration | None = None
    eap_timeout: Duration = 30.0
    """Gateway: the longest wait for the client's next EAP message."""
    fragmentation: Literal["yes", "accept", "force", "no"] = "yes"
    fragment_size: int = Field(1280, ge=256, le=65535)
    children: dict[str, ChildSection] = {}

    @model_validator(mode="after")
    def _one_eap_side(self) -> ConnectionSection:
        """EAP authenticates a client to its gateway, never both ends (RFC 7296 §2.16)."""
        if self.local.auth.startswith("eap") and self.remote.auth.startswith("eap"):
            raise ValueError("local.auth and remote.auth cannot both be EAP methods")
        return self

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in (0, 1, 2):
            raise ValueError(f"version must be 1, 2 or 0 (either), not {value}")
        return value

    @model_validator(mode="after")
    def _ikev1_limits(self) -> ConnectionSection:
        """What IKEv1 cannot do: EAP (IKEv1 has XAuth instead), Aggressive Mode in IKEv2."""
        if self.aggressive and self.version == 2:
            raise ValueError("aggressive = true needs IKEv1 (version = 1 or 0)")
        if self.version == 1 and "eap" in (self.local.auth[:3], self.remote.auth[:3]):
            raise ValueError("EAP needs IKEv2 (version = 2); IKEv1 has no EAP")
        if self.version == 1 and self.local.pubkey != self.remote.pubkey:
            raise ValueError(
                "IKEv1 authenticates both ends with one method (RFC 2409 §5):"
                " local.auth and remote.auth must both be psk or both public-key"
            )
        if self.version == 1 and {"rsa/pss", "ed25519"} & {self.local.auth, self.remote.auth}:
            raise ValueError("IKEv1 signs with RSA PKCS#1 v1.5 or ECDSA only: use auth = pubkey")
        return self


class SecretSection(Strict):
    """``[secrets.NAME]``; a NAME starting with ``eap`` holds an EAP user's password."""

    id: str | None = None
    ids: list[str] = []
    secret: str | None = None
    secret_file: str | None = None
    private_key: str | None = None
    """A PEM or DER private key file (RSA, ECDSA or Ed25519), found by its certificate."""


class ConfigFile(Strict):
    daemon: DaemonSection = DaemonSection()
    connections: dict[str, ConnectionSection] = {}
    secrets: dict[str, SecretSection] = {}
