"""What the protocol core needs to know about a connection.

These value types hold no defaults: every knob is declared once, in ``ikepulse.config.schema``,
and ``ikepulse.config`` builds them (DESIGN.md §3.11).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509

from ..crypto import der
from ..crypto.cert_ids import dn_matches, dn_text, is_dn_pattern, parse_dn, rdns_of_der
from ..crypto.certs import Trust
from ..crypto.signature import PrivateKey
from ..wire.enums import IdType
from ..wire.traffic_selectors import TrafficSelector
from .fragments import FragmentPolicy
from .liveness import LivenessPolicy
from .proposal import CryptoProposal


class Mode(Enum):
    """CHILD SA encapsulation mode (RFC 7296 §1.3.1, USE_TRANSPORT_MODE)."""

    TUNNEL = "tunnel"
    TRANSPORT = "transport"


class Unique(Enum):
    """What a new IKE SA with a peer does to older ones (swanctl.conf ``unique``)."""

    NO = "no"
    """Keep them, unless the peer says it has none (INITIAL_CONTACT, §2.4)."""
    NEVER = "never"
    """Keep them, even on INITIAL_CONTACT."""
    REPLACE = "replace"
    """Drop them."""


class StartAction(Enum):
    """What the daemon does with a connection at start-up (swanctl.conf ``start_action``)."""

    NONE = "none"
    TRAP = "trap"
    START = "start"


class CloseAction(Enum):
    """What happens to a CHILD SA the peer closes: its own Delete, or the Delete of its IKE
    SA, outside a rekey (swanctl.conf ``close_action``)."""

    NONE = "none"
    """Nothing."""
    TRAP = "trap"
    """Hold its traffic and negotiate it again when some arrives."""
    START = "start"
    """Negotiate it again at once: on the same IKE SA, or with a new one if that went."""


class AuthClass(Enum):
    """How one side of a connection authenticates (swanctl.conf ``local.auth``/``remote.auth``)."""

    PSK = "psk"
    PUBKEY = "pubkey"
    """A certificate's key (RFC 7296 §2.15, RFC 7427)."""
    EAP_MSCHAPV2 = "eap-mschapv2"
    """EAP-MSCHAPv2 (RFC 7296 §2.16): the client's side; its gateway uses its own method."""

    @property
    def eap(self) -> bool:
        return self.value.startswith("eap")


MATCH_NONE = 0
MATCH_ANY = 1
"""``%any`` (a connection without ``remote.id``)."""
MATCH_WILDCARD = 2
"""A ``*`` pattern; more literal characters add to it, so the most specific wins."""
MATCH_PERFECT = 1 << 16


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKE identity (§3.5), parsed from text the way strongSwan does."""

    id_type: IdType
    data: bytes

    @classmethod
    def parse(cls, text: str) -> Identity:
        """IP address, ``@fqdn``, ``user@domain``, ``C=..,O=..`` DN, else an FQDN."""
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            kind = IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR
            return cls(kind, addr.packed)
        if text.startswith("@"):
            return cls(IdType.ID_FQDN, text[1:].encode())
        if "@" in text:
            return cls(IdType.ID_RFC822_ADDR, text.encode())
        if "=" in text:
            try:
                name = parse_dn(text)
            except ValueError as exc:
                raise ValueError(f"identity {text!r} is not a distinguished name: {exc}") from None
            return cls(IdType.ID_DER_ASN1_DN, name.public_bytes())
        return cls(IdType.ID_FQDN, text.encode())

    @property
    def is_pattern(self) -> bool:
        """Names many peers (``*`` in an FQDN or RFC 822 name, a ``*`` RDN value in a DN):
        never sent as IDr (§3.5)."""
        if self.id_type == IdType.ID_DER_ASN1_DN:
            try:
                return is_dn_pattern(rdns_of_der(self.data))
            except der.DerError:
                return False
        return self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR) and b"*" in self.data

    def matches(self, peer: Identity) -> int:
        """How well ``peer`` (an identity a peer sent) fits this one used as a pattern, as
        strongSwan ranks it: MATCH_PERFECT for the same identity (a DN compared by value),
        MATCH_WILDCARD and up for an FQDN or RFC 822 pattern with ``*`` (``*.example.com``,
        ``*@example.com``; case ignored) or a DN with ``*`` RDN values, more literal parts
        ranking higher; MATCH_NONE otherwise."""
        if self == peer:
            return MATCH_PERFECT
        if self.id_type != peer.id_type:
            return MATCH_NONE
        if self.id_type == IdType.ID_DER_ASN1_DN:
            return _dn_match(self.data, peer.data)
        if b"*" not in self.data:
            return MATCH_NONE
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            parts = self.data.lower().split(b"*")
            regex = b".*".join(re.escape(part) for part in parts)
            if re.fullmatch(regex, peer.data.lower(), re.DOTALL):
                return MATCH_WILDCARD + sum(len(part) for part in parts)
        return MATCH_NONE

    def __str__(self) -> str:
        if self.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR) and len(self.data) in (4, 16):
            return str(ipaddress.ip_address(self.data))
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.decode("utf-8", "replace")
        if self.id_type == IdType.ID_DER_ASN1_DN:
            try:
                return dn_text(rdns_of_der(self.data))
            except der.DerError:
                pass
        return self.data.hex()


def _dn_match(pattern: bytes, claimed: bytes) -> int:
    """A DN pattern against a claimed DN, attribute by attribute (values compared by value,
    whatever their ASN.1 string type)."""
    try:
        want, have = rdns_of_der(pattern), rdns_of_der(claimed)
    except der.DerError:
        return MATCH_NONE
    if not dn_matches(want, have):
        return MATCH_NONE
    literal = sum(1 for rdn in want for _, value in rdn if value != "*")
    return MATCH_PERFECT if not is_dn_pattern(want) else MATCH_WILDCARD + literal


def identity_match(pattern: Identity | None, peer: Identity) -> int:
    """How well ``peer`` fits ``pattern`` (None is ``%any``); MATCH_NONE (0) if not at all."""
    return MATCH_ANY if pattern is None else pattern.matches(peer)


@dataclass(frozen=True, slots=True)
class Secret:
    """One ``secrets.NAME`` entry: the identities it is for (none: anyone) and its value."""

    ids: tuple[Identity, ...]
    data: bytes = field(repr=False)


def _best(secrets: tuple[Secret, ...], wanted: tuple[Identity, ...], anonymous: bool):
    """The secret listing most of ``wanted``; one listing ids, none of them wanted, never
    fits; one listing no ids fits with the lowest rank if ``anonymous``."""
    best, best_score = None, -1
    for secret in secrets:
        score = sum(1 for i in set(wanted) if i in secret.ids)
        if secret.ids and not score or not secret.ids and not anonymous:
            continue
        if score > best_score:
            best, best_score = secret, score
    return best


@dataclass(frozen=True, slots=True)
class Credentials:
    shared: tuple[Secret, ...] = ()
    """IKE pre-shared keys."""
    eap: tuple[Secret, ...] = ()
    """EAP passwords (``secrets.eap-*``)."""

    def shared_key(self, local: Identity, remote: Identity | None) -> bytes | None:
        """The PSK for ``local`` and ``remote``: a secret listing both, then one listing
        either (a group key naming only the gateway), then one listing none."""
        wanted = (local,) if remote is None else (local, remote)
        found = _best(self.shared, wanted, anonymous=True)
        return None if found is None else found.data

    def eap_password(self, user: Identity, server: Identity | None = None) -> bytes | None:
        """The EAP password of ``user`` (a secret that lists the user, best if it also
        lists ``server``). Never for ``server`` itself: a secret listing the gateway and a
        user would otherwise let a client log in as the gateway with that user's password."""
        if user == server:
            return None
        candidates = tuple(s for s in self.eap if user in s.ids)
        wanted = (user,) if server is None else (user, server)
        found = _best(candidates, wanted, anonymous=False)
        return None if found is None else found.data


@dataclass(frozen=True, slots=True)
class LocalPubkey:
    """``local.auth = "pubkey"``: our certificate, the intermediates to send, our key."""

    certs: tuple[x509.Certificate, ...]
    """End-entity certificate first, then intermediate CA certificates."""
    key: PrivateKey = field(repr=False, compare=False)
    """Compared through ``certs``: it is the key of the first one (keys have no equality
    by value, and a reload must find an unchanged connection equal)."""
    pss: bool
    """Sign with RSASSA-PSS (``auth = "rsa/pss"``) rather than PKCS#1 v1.5."""


@dataclass(frozen=True, slots=True)
class RetransmitPolicy:
    """strongSwan-like retransmission: try n waits ``timeout * base**n``, ``tries`` resends.

    ``jitter`` (0..1) shortens each wait by a random fraction up to that much.
    """

    timeout: float
    base: float
    tries: int
    jitter: float


@dataclass(frozen=True, slots=True)
class Updown:
    """``updown`` of a child: a shell command run, as strongSwan's updown plugin does, when
    its CHILD SA comes up or goes down (the runtime runs it; the core never does)."""

    command: str
    events: bool
    """Also run it for ``peer-dead`` and ``restored`` (``updown_events``)."""
    timeout: float
    """Seconds before a run still going is killed."""


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """One ``children.NAME`` section. Empty selectors mean "dynamic": the SA's own address."""

    name: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    esp_proposals: tuple[CryptoProposal, ...]
    mode: Mode
    rekey_time: float
    """Seconds until a CHILD SA is rekeyed (0: never), less a random part up to rand_time."""
    life_time: float | None
    """Hard expiry; None: rekey_time * 1.1 as in strongSwan."""
    rand_time: float | None
    """Random reduction of rekey_time; None: life_time - rekey_time."""
    rekey_bytes: int
    """Rekey once either SA of the pair processed this many bytes (0: never)."""
    life_bytes: int | None
    rand_bytes: int | None
    rekey_packets: int
    """Rekey once either SA of the pair processed this many packets (0: never)."""
    life_packets: int | None
    rand_packets: int | None
    close_action: CloseAction
    """What happens when the peer closes it (not when we do, nor in a rekey)."""
    updown: Updown | None = field(compare=False)
    """The hook (None: none). Not part of equality: a new script takes effect on reload
    without replacing the tunnel."""

    def time_limits(self, fraction: float) -> tuple[float | None, float | None]:
        return lifetime_limits(self.rekey_time, self.life_time, self.rand_time, fraction)

    def byte_limits(self, fraction: float) -> tuple[float | None, float | None]:
        return lifetime_limits(self.rekey_bytes, self.life_bytes, self.rand_bytes, fraction)

    def packet_limits(self, fraction: float) -> tuple[float | None, float | None]:
        return lifetime_limits(self.rekey_packets, self.life_packets, self.rand_packets, fraction)


def lifetime_limits(
    rekey: float, life: float | None, rand: float | None, fraction: float
) -> tuple[float | None, float | None]:
    """One of swanctl.conf's lifetime triples (``*_time``, ``*_bytes``, ``*_packets``) as
    (rekey at, close at): rekey at ``rekey`` less ``fraction`` (0..1) of ``rand`` (default
    ``life - rekey``, at most half of ``rekey``); close at ``life`` (default ``rekey`` +
    10 %). 0 means never."""
    hard = life if life is not None else rekey * 1.1
    jitter = rand if rand is not None else min(max(0.0, hard - rekey), rekey / 2)
    soft = rekey - jitter * fraction if rekey > 0 else None
    return soft, hard or None


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """One ``connections.NAME`` section with its PSK resolved from ``secrets``.

    ``remote_id`` None accepts any identity; empty ``remote_addrs`` accepts any address.
    """

    name: str
    local_id: Identity
    remote_id: Identity | None
    psk: bytes = field(repr=False)
    proposals: tuple[CryptoProposal, ...]
    children: tuple[ChildConfig, ...]
    remote_addrs: tuple[str, ...]
    local_addrs: tuple[str, ...]
    local_port: int
    remote_port: int
    retransmit: RetransmitPolicy
    force_encap: bool
    mobike: bool
    """Offer MOBIKE (RFC 4555) in IKE_AUTH and accept it from the peer."""
    version: int
    """1: IKEv1, 2: IKEv2, 0: either (we initiate IKEv2 and answer both)."""
    aggressive: bool
    """IKEv1: Aggressive Mode instead of Main Mode (RFC 2409 §5.4), both ways."""
    start_action: StartAction
    liveness: LivenessPolicy
    rekey_time: float
    """IKE SA rekey interval (0: never), less a random part up to rand_time (§2.8)."""
    reauth_time: float
    """Reauthentication interval (0: never): a new IKE SA and CHILD SAs, then the old go."""
    over_time: float | None
    """How long an IKE SA lives past rekey_time or reauth_time, whichever comes first,
    when it could not be renewed; None: 10 % of the longer of the two."""
    rand_time: float | None
    """Random reduction of rekey_time and reauth_time; None: over_time, as in strongSwan."""
    unique: Unique
    local_auth: AuthClass
    remote_auth: AuthClass
    local_eap_id: Identity | None
    """Client: the identity we give in EAP (None: our IKE identity)."""
    remote_eap_id: Identity | None
    """Gateway: ask the client for its EAP identity (EAP-Identity) and require it to fit
    this pattern (None: no EAP-Identity round, the client's IKE identity is its user name)."""
    ask_eap_identity: bool
    eap_timeout: float
    """Gateway: how long to wait for the client's next EAP message before giving up."""
    credentials: Credentials = field(repr=False)
    """Every secret of the configuration, looked up at run time by the peer's identity."""

    fragmentation: FragmentPolicy
    """IKE fragmentation (RFC 7383): announce it, use it, and the datagram size."""

    local_pubkey: LocalPubkey | None
    """``local.auth = "pubkey"``: our certificates and key; None authenticates with the PSK."""
    remote_trust: Trust | None
    """``remote.auth = "pubkey"``: the CAs the peer's certificate must chain to; None: PSK."""

    def shared_key(self, peer: Identity | None) -> bytes:
        """The PSK for us and ``peer``: the best ``[secrets]`` entry (both ids, then one,
        e.g. a group key listing only ours), else the one resolved when loading."""
        found = self.credentials.shared_key(self.local_id, peer)
        return self.psk if found is None else found

    @property
    def ike_over_time(self) -> float:
        if self.over_time is not None:
            return self.over_time
        return max(self.rekey_time, self.reauth_time) * 0.1

    @property
    def ike_jitter(self) -> float:
        return self.rand_time if self.rand_time is not None else self.ike_over_time

    def child(self, name: str) -> ChildConfig:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"connection {self.name!r} has no child {name!r}")


def matching(
    connections: tuple[ConnectionConfig, ...], remote: str, local: str
) -> tuple[ConnectionConfig, ...]:
    """The connections whose ``remote_addrs`` and ``local_addrs`` admit an IKE_SA_INIT from
    ``remote`` to ``local`` (empty, ``%any`` or a prefix admit)."""

    def accepts(addrs: tuple[str, ...], address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return not addrs or any(
            addr in ("%any", "0.0.0.0/0", "::/0") or ip in ipaddress.ip_network(addr, strict=False)
            for addr in addrs
        )

    return tuple(
        c for c in connections if accepts(c.remote_addrs, remote) and accepts(c.local_addrs, local)
    )
