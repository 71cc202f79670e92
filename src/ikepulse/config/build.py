"""The core's value types, built from schema sections (DESIGN.md §3.11).

The loader maps each validated ``connections.NAME`` section with the ``*_from`` functions.
Code that builds a configuration in Python (the in-memory harness, tests, benches) uses
the builders below them: their defaults are those of an empty schema section, so a knob's
default is written only in ``schema.py``. Overrides are core values (``DpdAction.CLEAR``,
a jitter fraction), applied as given: they skip the schema's validation.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.admission import AdmissionPolicy
from ..core.connection import (
    AuthClass,
    ChildConfig,
    CloseAction,
    ConnectionConfig,
    Credentials,
    Identity,
    LocalPubkey,
    Mode,
    RetransmitPolicy,
    Secret,
    StartAction,
    Unique,
    Updown,
)
from ..core.fragments import Fragmentation, FragmentPolicy
from ..core.liveness import DpdAction, LivenessPolicy
from ..core.proposal import CryptoProposal
from ..crypto.certs import Trust
from ..wire.traffic_selectors import TrafficSelector
from .proposals import DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS
from .schema import AuthSection, ChildSection, ConnectionSection, DaemonSection


def selectors(texts: list[str]) -> tuple[TrafficSelector, ...]:
    """``local_ts`` / ``remote_ts``: subnets; ``dynamic`` is the empty tuple."""
    return tuple(TrafficSelector.from_network(t) for t in texts if t != "dynamic")


def retransmit_from(section: ConnectionSection) -> RetransmitPolicy:
    """The ``retransmit_*`` keys; ``retransmit_jitter`` is a percentage, as in strongSwan."""
    return RetransmitPolicy(
        timeout=section.retransmit_timeout,
        base=section.retransmit_base,
        tries=section.retransmit_tries,
        jitter=section.retransmit_jitter / 100,
    )


def liveness_from(section: ConnectionSection) -> LivenessPolicy:
    """The ``dpd_*`` and ``nat_keepalive`` keys."""
    return LivenessPolicy(
        dpd_delay=section.dpd_delay,
        dpd_timeout=section.dpd_timeout,
        dpd_action=DpdAction("hold" if section.dpd_action == "trap" else section.dpd_action),
        nat_keepalive=section.nat_keepalive,
    )


def child_from(
    name: str, section: ChildSection, esp_proposals: tuple[CryptoProposal, ...]
) -> ChildConfig:
    """One ``children.NAME`` section, its ``esp_proposals`` already parsed."""
    return ChildConfig(
        name=name,
        local_ts=selectors(section.local_ts),
        remote_ts=selectors(section.remote_ts),
        esp_proposals=esp_proposals,
        mode=Mode(section.mode),
        rekey_time=section.rekey_time,
        life_time=section.life_time,
        rand_time=section.rand_time,
        rekey_bytes=section.rekey_bytes,
        life_bytes=section.life_bytes,
        rand_bytes=section.rand_bytes,
        rekey_packets=section.rekey_packets,
        life_packets=section.life_packets,
        rand_packets=section.rand_packets,
        close_action=CloseAction(section.close_action),
        updown=None
        if section.updown is None
        else Updown(section.updown, section.updown_events, section.updown_timeout),
    )


def fragmentation_from(section: ConnectionSection) -> FragmentPolicy:
    """The ``fragmentation`` and ``fragment_size`` keys (RFC 7383)."""
    return FragmentPolicy(Fragmentation(section.fragmentation), section.fragment_size)


def connection_from(
    name: str,
    section: ConnectionSection,
    *,
    local_id: Identity,
    remote_id: Identity | None,
    psk: bytes,
    proposals: tuple[CryptoProposal, ...],
    children: tuple[ChildConfig, ...],
    credentials: Credentials,
    local_eap_id: Identity | None = None,
    remote_eap_id: Identity | None = None,
    local_pubkey: LocalPubkey | None = None,
    remote_trust: Trust | None = None,
) -> ConnectionConfig:
    """One ``connections.NAME`` section, with what the loader resolves around it: the
    identities (EAP ones too), the PSK from ``secrets`` and all secrets, the parsed
    proposals and the children, our certificates and key and the peer's CAs (None: that
    side does not use a certificate)."""
    return ConnectionConfig(
        name=name,
        local_id=local_id,
        remote_id=remote_id,
        psk=psk,
        proposals=proposals,
        children=children,
        remote_addrs=tuple(section.remote_addrs),
        local_addrs=tuple(section.local_addrs),
        local_port=section.local_port,
        remote_port=section.remote_port,
        retransmit=retransmit_from(section),
        force_encap=section.encap,
        mobike=section.mobike,
        version=section.version,
        aggressive=section.aggressive,
        start_action=StartAction(section.start_action),
        liveness=liveness_from(section),
        rekey_time=section.rekey_time,
        reauth_time=section.reauth_time,
        over_time=section.over_time,
        rand_time=section.rand_time,
        unique=Unique(section.unique),
        local_auth=auth_class(section.local),
        remote_auth=auth_class(section.remote),
        local_eap_id=local_eap_id,
        remote_eap_id=remote_eap_id,
        ask_eap_identity=section.remote.eap_id is not None,
        eap_timeout=section.eap_timeout,
        credentials=credentials,
        fragmentation=fragmentation_from(section),
        local_pubkey=local_pubkey,
        remote_trust=remote_trust,
    )


def auth_class(side: AuthSection) -> AuthClass:
    """swanctl.conf's ``auth`` of one side; its public-key spellings are all PUBKEY."""
    return AuthClass.PUBKEY if side.pubkey else AuthClass(side.auth)


def admission_from(section: DaemonSection) -> AdmissionPolicy:
    """The daemon's limits on half-open IKE SAs and unauthenticated IKE_SA_INIT."""
    return AdmissionPolicy(
        section.cookie_threshold, section.half_open_limit, section.half_open_per_source,
        section.half_open_timeout, section.ike_sa_init_rate, section.ike_sa_init_burst,
        section.cookie_secret_lifetime, section.cookie_grace,
    )  # fmt: skip


def admission_policy(**overrides) -> AdmissionPolicy:
    """The default admission policy with ``overrides`` (AdmissionPolicy fields)."""
    return replace(admission_from(DaemonSection()), **overrides)


def liveness_policy(**overrides) -> LivenessPolicy:
    """The default liveness policy with ``overrides`` (LivenessPolicy fields)."""
    return replace(liveness_from(ConnectionSection()), **overrides)


def fragment_policy(**overrides) -> FragmentPolicy:
    """The default fragmentation policy with ``overrides`` (FragmentPolicy fields)."""
    return replace(fragmentation_from(ConnectionSection()), **overrides)


def retransmit_policy(**overrides) -> RetransmitPolicy:
    """The default retransmission policy with ``overrides`` (RetransmitPolicy fields)."""
    return replace(retransmit_from(ConnectionSection()), **overrides)


def child_config(name: str, **overrides) -> ChildConfig:
    """A child with the default ``children.NAME`` settings (dynamic selectors, default
    ESP proposals) and ``overrides`` (ChildConfig fields)."""
    return replace(child_from(name, ChildSection(), DEFAULT_ESP_PROPOSALS), **overrides)


def connection_config(
    name: str, *, local_id: Identity, remote_id: Identity | None, psk: bytes, **overrides
) -> ConnectionConfig:
    """A connection with the default ``connections.NAME`` settings (default IKE proposals,
    no children, ``psk`` as the one secret, for anyone) and ``overrides`` (ConnectionConfig
    fields)."""
    unconfigured = connection_from(
        name,
        ConnectionSection(),
        local_id=local_id,
        remote_id=remote_id,
        psk=psk,
        proposals=DEFAULT_IKE_PROPOSALS,
        children=(),
        credentials=Credentials(shared=(Secret((), psk),)),
    )
    return replace(unconfigured, **overrides)
