"""The typed seams between the core's parts (DESIGN.md §2): what a task sees of its IKE SA,
what the task manager sees of it, and what an IKE SA sees of its manager.

``IkeSa`` and ``SaManager`` implement these; the modules on the other side import only this
one, and only for type checking, so the core has no import circle.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cryptography import x509

    from ..wire.isakmp import PayloadChain
    from ..wire.isakmp_enums import NotifyV1
    from ..wire.message import Message
    from .child_sa import ChildSa
    from .children import ChildEntry, Children
    from .connection import ChildConfig, ConnectionConfig, Identity, RetransmitPolicy
    from .events import Address, Event
    from .fragments import Fragments, Opened
    from .gate import Gate
    from .ikev1.flights import Flights
    from .ikev1.keying import V1Keying
    from .ikev1.phase1 import Phase1
    from .ikev1.quick_mode import QuickMode
    from .mobility import Mobility
    from .negotiate import Suite
    from .peer_liveness import PeerLiveness
    from .randomness import Rng
    from .reconcile import Reconciler
    from .renewal import IkeRenewal
    from .restarts import Restarts
    from .sa_index import SaTable
    from .sk_protection import SkProtection
    from .state import IkeState
    from .task import Inbound, Purpose, Task
    from .task_manager import TaskManager


class SaRegistry(Protocol):
    """The SA manager, as one IKE SA sees it."""

    sas: SaTable
    connections: tuple[ConnectionConfig, ...]
    gate: Gate
    rng: Rng
    natt_port: int
    qcd_secret: bytes
    wall_offset: float
    export_keys: bool
    esp_vnet: bool
    counters: Counter[str]
    local_addresses: tuple[str, ...]
    reconciler: Reconciler
    restarts: Restarts

    def emit(self, event: Event) -> None: ...
    def queue_datagram(self, data: bytes, src: Address, dst: Address, sa: object) -> None: ...
    def matching(self, remote: str, local: str, version: int) -> tuple[ConnectionConfig, ...]: ...
    def new_ike_spi(self) -> bytes: ...
    def allocate_esp_spi(self) -> bytes: ...
    def release_esp_spi(self, spi: bytes) -> None: ...
    def holds_other_sa(self, sa: object) -> bool: ...
    def siblings(self, sa: object) -> list[TaskHost]: ...
    def reauthenticated_copy(self, sa: object, child: ChildSa) -> ChildSa | None: ...
    def successor(
        self, old: object, *, initiator: bool, spi_i: bytes, spi_r: bytes, now: float
    ) -> TaskHost: ...
    def initiate(
        self,
        name: str,
        local: Address,
        remote: Address,
        now: float,
        children: list[ChildConfig] | None = None,
        reauth_of: object = None,
    ) -> object: ...
    def on_established(self, sa: object, now: float) -> None: ...
    def on_peer_dead(self, sa: object, now: float) -> None: ...
    def on_failed(self, sa: object, now: float) -> None: ...


class ExchangeHost(Protocol):
    """The IKE SA, as its task manager sees it."""

    rng: Rng
    state: IkeState
    label: str
    retransmit: RetransmitPolicy
    liveness: PeerLiveness

    def count(self, name: str) -> None: ...
    def datagrams(
        self, exchange, message_id: int, *, response: bool, payloads: list, zero_spi: bool = False
    ) -> tuple[bytes, ...]: ...
    def open(self, raw: bytes, msg: Message, now: float) -> Opened | None: ...
    def send(
        self, packets: tuple[bytes, ...], now: float, path: tuple[Address, Address] | None = None
    ) -> None: ...
    def responder_tasks(self, inbound: Inbound) -> list[Task]: ...
    def authenticated_inbound(self, src: Address, dst: Address, now: float) -> None: ...
    def no_response(self, reason: str, now: float) -> None: ...
    def crash_report(self, msg: Message, now: float) -> None: ...
    def fail(self, reason: str, notify, now: float) -> None: ...
    def exchange_completed(self, now: float) -> None: ...


class ChildHost(Protocol):
    """The IKE SA, as its ``Children`` see it."""

    manager: SaRegistry
    rng: Rng
    initiator: bool
    local: Address
    remote: Address
    connection: ConnectionConfig | None

    @property
    def name(self) -> str: ...
    @property
    def udp_encap(self) -> bool: ...
    def emit(self, event: Event) -> None: ...
    def start(self, purpose: Purpose, now: float, *args, waits: list[float] | None = None): ...


class TaskHost(ChildHost, Protocol):
    """The IKE SA, as its tasks see it. Tasks change it only through these methods and the
    parts it owns (``sk``, ``children``, ``renewal``, ``tasks``), never by assigning its
    fields."""

    spi_i: bytes
    spi_r: bytes
    state: IkeState
    candidates: tuple[ConnectionConfig, ...]
    sk: SkProtection
    children: Children
    renewal: IkeRenewal
    liveness: PeerLiveness
    mobility: Mobility
    fragments: Fragments
    tasks: TaskManager
    local_identity: Identity | None
    remote_identity: Identity | None
    established_at: float | None

    @property
    def finished(self) -> bool: ...
    @property
    def local_spi(self) -> bytes: ...
    def count(self, name: str) -> None: ...
    def exported_keys(self) -> tuple: ...
    def state_to(self, new: IkeState) -> None: ...
    def select_connection(self, connection: ConnectionConfig) -> None: ...
    def set_responder_spi(self, spi: bytes) -> None: ...
    def derive_keys(
        self,
        suite: Suite,
        shared: bytes,
        nonces: tuple[bytes, bytes],
        rekeyed: TaskHost | None = None,
    ) -> None: ...
    def nat_detected(self, local: bool, remote: bool) -> None: ...
    def certified(self, certificate: x509.Certificate) -> None: ...
    def float_to_natt_port(self, natt_supported: bool = False) -> None: ...
    def update_hosts(
        self, local: Address, remote: Address, nat: tuple[bool, bool] | None = None
    ) -> None: ...
    def established(
        self,
        now: float,
        local_id: Identity,
        remote_id: Identity,
        peer_qcd_token: bytes | None,
        initial_contact: bool,
    ) -> None: ...
    def in_flight(self, *purposes: Purpose) -> bool: ...
    def rekey(self, now: float) -> bool: ...
    def reauthenticate(self, now: float) -> object: ...
    def peer_dead(self, reason: str, now: float) -> None: ...
    def deleted(self, by_peer: bool, now: float) -> None: ...
    def delete(self, now: float) -> None: ...
    def inherit(self, old: TaskHost, now: float) -> None: ...


class IsakmpHost(TaskHost, Protocol):
    """An IKEv1 SA, as its phase 1, Quick Modes and Informationals see it (core/ikev1)."""

    keying: V1Keying
    phase1: Phase1
    flights: Flights
    quick: dict[int, QuickMode]
    answering: bytes
    first_payload: int
    initial_contact: bool
    nat_local: bool
    nat_remote: bool

    def v1_candidates(self, aggressive: bool) -> list[ConnectionConfig]: ...
    def new_message_id(self) -> int: ...
    def message(self, exchange, message_id: int, payloads: list, encrypted: bool) -> bytes: ...
    def send_phase1(
        self, payloads: list, now: float, *, encrypted: bool = False, final: bool = False
    ) -> None: ...
    def open_phase1(self, ciphertext: bytes) -> PayloadChain: ...
    def send_quick(self, message_id: int, payloads: list, now: float, final: bool) -> None: ...
    def send_informational(self, payloads: list, now: float) -> None: ...
    def phase1_done(self, peer_id: Identity, now: float) -> None: ...
    def learn_notifies(self, chain: PayloadChain, now: float) -> None: ...
    def note_peer_error(self, error: NotifyV1, now: float) -> None: ...
    def dpd_acknowledged(self, sequence: int, now: float) -> None: ...
    def retire_later(self, entry: ChildEntry, now: float) -> None: ...
