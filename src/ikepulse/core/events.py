"""Events the core emits for the runtime, pulled with ``SaManager.next_event()``.

Instructions to the data plane (install or remove a CHILD SA) are events too: the core never
calls the ESP engine or the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..crypto.keys import ChildKeys, IkeKeys
from ..wire.enums import NotifyType
from ..wire.traffic_selectors import TrafficSelector
from .child_sa import ChildLimits, ChildSa
from .connection import Mode
from .liveness import DpdAction

if TYPE_CHECKING:
    from .hosts import ChildHost

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    """An IKE SA finished IKE_AUTH (RFC 7296 §1.2)."""

    connection: str
    """Name of the connection the SA belongs to."""
    spi_i: bytes
    """Initiator's IKE SPI."""
    spi_r: bytes
    """Responder's IKE SPI."""
    local: Address
    """Our address and port."""
    remote: Address
    """The peer's address and port."""
    proposal: str
    """The chosen IKE proposal in strongSwan syntax."""
    initiator: bool
    """True when we initiated the IKE SA."""
    encr: tuple[int, int | None] = (0, None)
    """Encryption transform id and key length in bits (for a key export)."""
    integ: int | None = None
    """Integrity transform id, None for AEAD."""
    keys: IkeKeys | None = field(default=None, repr=False)
    """The SA's keys, for an opt-in export to Wireshark (``[daemon] save_keys``); never logged."""


@dataclass(frozen=True, slots=True)
class IkeSaRekeyed:
    """An IKE SA was replaced by a rekeyed one carrying the same CHILD SAs (§2.18)."""

    connection: str
    """Name of the connection."""
    old_spi_i: bytes
    """Initiator's SPI of the old IKE SA."""
    old_spi_r: bytes
    """Responder's SPI of the old IKE SA."""
    spi_i: bytes
    """Initiator's SPI of the new IKE SA."""
    spi_r: bytes
    """Responder's SPI of the new IKE SA."""
    encr: tuple[int, int | None] = (0, None)
    """The new SA's encryption transform id and key length in bits (for a key export)."""
    integ: int | None = None
    """The new SA's integrity transform id, None for AEAD."""
    keys: IkeKeys | None = field(default=None, repr=False)
    """The new SA's keys, for an opt-in export to Wireshark; never logged."""


@dataclass(frozen=True, slots=True)
class IkeSaFailed:
    """An IKE SA could not be established or died during an exchange."""

    connection: str
    """Name of the connection (empty when none was selected yet)."""
    spi_i: bytes
    """Initiator's IKE SPI."""
    reason: str
    """Human-readable cause."""
    notify: NotifyType | None
    """The error notify involved (sent or received), if any."""


@dataclass(frozen=True, slots=True)
class IkeSaDeleted:
    """An established IKE SA is gone, with all its CHILD SAs (§1.4.1)."""

    connection: str
    """Name of the connection."""
    spi_i: bytes
    """Initiator's IKE SPI."""
    spi_r: bytes
    """Responder's IKE SPI."""
    by_peer: bool
    """True when the peer asked for the delete."""


@dataclass(frozen=True, slots=True)
class ChildSaInstalled:
    """A CHILD SA pair is ready: the data plane should install both directions (§2.17)."""

    connection: str
    """Name of the connection."""
    child: str
    """Name of the child configuration."""
    spi_in: bytes
    """SPI of the inbound SA (ours, 4 bytes)."""
    spi_out: bytes
    """SPI of the outbound SA (the peer's)."""
    proposal: str
    """The chosen ESP proposal in strongSwan syntax."""
    encr: tuple[int, int | None]
    """Encryption transform id and key length in bits."""
    integ: int | None
    """Integrity transform id, None for AEAD."""
    esn: bool
    """Extended sequence numbers negotiated."""
    keys: ChildKeys
    """Keying material, initiator-to-responder first."""
    initiator: bool
    """True when we initiated the IKE SA (selects which keys are inbound)."""
    local_ts: tuple[TrafficSelector, ...]
    """Our negotiated traffic selectors."""
    remote_ts: tuple[TrafficSelector, ...]
    """The peer's negotiated traffic selectors."""
    mode: Mode
    """Tunnel or transport."""
    udp_encap: bool
    """ESP in UDP (RFC 3948) because a NAT was detected or encapsulation was forced."""
    local: Address
    """Our outer address and port."""
    remote: Address
    """The peer's outer address and port."""
    replaces: bytes | None = None
    """Inbound SPI of the CHILD SA this one replaces (deleted shortly after): the one it
    rekeys, or the copy on the old IKE SA when the peer reauthenticates."""
    defer_outbound: bool = False
    """Do not send on this SA yet. Rekey or reauthentication responder: keep sending on the
    old SA until the peer's first packet on the new one or the old one's delete, so that
    nothing reaches the initiator before it installed the new inbound SA (make-before-break).
    Also set for the redundant SA of a rekey collision, which never carries our traffic."""
    vnet: bool = False
    """Both peers sent the private notify IKEPULSE_ESP_VNET: TUN super-packets may travel
    whole in one ESP packet with Next Header 253 (esp/vnet.py)."""
    limits: ChildLimits = field(default_factory=ChildLimits)
    """When the core rekeys and closes it: times on the monotonic clock, and the byte and
    packet counts the data plane should report (``SaManager.esp_usage``) when reached."""


@dataclass(frozen=True, slots=True)
class ChildSaRekeyed:
    """A CHILD SA was rekeyed (§1.3.3); the old pair is deleted shortly after."""

    connection: str
    """Name of the connection."""
    child: str
    """Name of the child configuration."""
    old_spi_in: bytes
    """Inbound SPI of the replaced CHILD SA."""
    spi_in: bytes
    """Inbound SPI of the new CHILD SA."""


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    """A CHILD SA could not be created; the IKE SA may still be up."""

    connection: str
    """Name of the connection."""
    child: str
    """Name of the child configuration."""
    reason: str
    """Human-readable cause."""
    notify: NotifyType | None
    """The error notify involved, if any."""


@dataclass(frozen=True, slots=True)
class ChildSaDeleted:
    """A CHILD SA pair is gone: the data plane should remove both directions."""

    connection: str
    """Name of the connection."""
    child: str
    """Name of the child configuration."""
    spi_in: bytes
    """SPI of the inbound SA."""
    spi_out: bytes
    """SPI of the outbound SA."""
    by_peer: bool
    """True when the peer asked for the delete."""


@dataclass(frozen=True, slots=True)
class ChildSaTrapped:
    """The peer closed a CHILD SA whose ``close_action`` is trap: the data plane should hold
    traffic for the child's selectors and ask for the connection (install a trap)."""

    connection: str
    """Name of the connection."""
    child: str
    """Name of the child configuration."""


@dataclass(frozen=True, slots=True)
class PeerDead:
    """The peer showed no sign of life within the detection budget (RFC 7296 §2.4)."""

    connection: str
    """Name of the connection."""
    spi_i: bytes
    """Initiator's IKE SPI of the dead IKE SA."""
    reason: str
    """Why we believe the peer is gone."""
    detected_after: float
    """Seconds from the last evidence (the peer's last sign of life, or the first of our
    packets left unanswered) to the verdict."""
    action: DpdAction
    """The configured dpd_action."""
    direction: str
    """Which way the path failed: ``outbound`` (the peer's packets still arrived, ours went
    unanswered) or ``silent`` (nothing arrived from the peer)."""


@dataclass(frozen=True, slots=True)
class IkeSaReauthenticated:
    """Make-before-break reauthentication: a new IKE SA with new CHILD SAs is up and the
    old IKE SA is being deleted."""

    connection: str
    """Name of the connection."""
    old_spi_i: bytes
    """Initiator's SPI of the old IKE SA."""
    spi_i: bytes
    """Initiator's SPI of the new IKE SA."""


@dataclass(frozen=True, slots=True)
class TunnelRestored:
    """A connection whose peer died (dpd_action = restart) or deleted its IKE SA
    (close_action = start) is established again."""

    connection: str
    """Name of the connection."""
    downtime: float
    """Seconds from the verdict (or the peer's delete) to the new IKE SA."""
    attempts: int
    """Initiation attempts it took."""


@dataclass(frozen=True, slots=True)
class SaEndpointsChanged:
    """The IKE SA moved to new outer addresses or its NAT state changed (RFC 4555 §3.5,
    RFC 7296 §2.23): the data plane sends its CHILD SAs' ESP between the new pair."""

    connection: str
    """Name of the connection."""
    spi_i: bytes
    """Initiator's IKE SPI."""
    local: Address
    """Our new outer address and port."""
    remote: Address
    """The peer's new outer address and port."""
    udp_encap: bool
    """ESP in UDP (RFC 3948) from now on."""
    spis_in: tuple[bytes, ...]
    """Inbound SPIs of the CHILD SAs that move."""


Event = (
    IkeSaEstablished
    | IkeSaFailed
    | IkeSaRekeyed
    | IkeSaReauthenticated
    | IkeSaDeleted
    | ChildSaInstalled
    | ChildSaRekeyed
    | ChildSaFailed
    | ChildSaDeleted
    | ChildSaTrapped
    | PeerDead
    | TunnelRestored
    | SaEndpointsChanged
)


def child_installed(
    sa: ChildHost,
    child: ChildSa,
    initiated: bool,
    succeeds: ChildSa | None,
    defer_outbound: bool,
    limits: ChildLimits,
) -> ChildSaInstalled:
    """The event for ``child``, installed by ``sa`` in an exchange we ``initiated``."""
    suite = child.suite
    return ChildSaInstalled(
        connection=sa.name,
        child=child.name,
        spi_in=child.spi_in,
        spi_out=child.spi_out,
        proposal=str(suite),
        encr=suite.encr,
        integ=suite.integ,
        esn=bool(suite.esn),
        keys=child.keys,
        initiator=initiated,
        local_ts=child.local_ts,
        remote_ts=child.remote_ts,
        mode=child.mode,
        udp_encap=sa.udp_encap,
        local=sa.local,
        remote=sa.remote,
        replaces=None if succeeds is None else succeeds.spi_in,
        defer_outbound=defer_outbound,
        vnet=child.vnet,
        limits=replace(limits),
    )
