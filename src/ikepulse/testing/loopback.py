"""Two ikepulse peers wired together in memory with a fake clock.

Used by the tests (DESIGN.md §3.10), the core benchmark and `ikepulse demo`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ikepulse.config.build import child_config, connection_config, liveness_policy
from ikepulse.config.proposals import parse_esp_proposal, parse_ike_proposal
from ikepulse.core.connection import AuthClass, ConnectionConfig, Identity
from ikepulse.core.datagram import Datagram
from ikepulse.core.ike_sa import IkeSa
from ikepulse.core.liveness import LivenessPolicy
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.wire.enums import ExchangeType
from ikepulse.wire.message import decode_message
from ikepulse.wire.traffic_selectors import TrafficSelector

LEFT = ("198.51.100.1", 500)
RIGHT = ("198.51.100.2", 500)
PSK = b"0123456789abcdef"
QUIET = liveness_policy(dpd_delay=0, nat_keepalive=0)
LEFT_NET, RIGHT_NET = "203.0.113.0/26", "203.0.113.64/26"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now


def connection(
    local_id: str,
    remote_id: str | None,
    local_net: str,
    remote_net: str,
    *,
    ike: str = "aes256gcm16-prfsha256-x25519",
    esp: str = "aes256gcm16",
    psk: bytes = PSK,
    liveness: LivenessPolicy = QUIET,
    rekey_time: float = 0.0,
    ike_rekey_time: float = 0.0,
    child: dict | None = None,
    **extra,
) -> ConnectionConfig:
    """A connection with one child ``lan`` (``child``: more ChildConfig fields, ``extra``:
    more ConnectionConfig fields); liveness checks and rekeying are off unless asked for,
    a side given certificates (``local_pubkey``, ``remote_trust``) authenticates with them,
    everything else has the configuration defaults."""
    if extra.get("local_pubkey") is not None:
        extra.setdefault("local_auth", AuthClass.PUBKEY)
    if extra.get("remote_trust") is not None:
        extra.setdefault("remote_auth", AuthClass.PUBKEY)
    lan = child_config(
        "lan",
        local_ts=(TrafficSelector.from_network(local_net),),
        remote_ts=(TrafficSelector.from_network(remote_net),),
        esp_proposals=tuple(parse_esp_proposal(p) for p in esp.split(",")),
        rekey_time=rekey_time,
        **(child or {}),
    )
    return connection_config(
        "site",
        local_id=Identity.parse(local_id),
        remote_id=Identity.parse(remote_id) if remote_id else None,
        psk=psk,
        proposals=tuple(parse_ike_proposal(p) for p in ike.split(",")),
        children=(lan,),
        liveness=liveness,
        rekey_time=ike_rekey_time,
        **extra,
    )


@dataclass
class Peer:
    manager: SaManager
    address: tuple[str, int]
    events: list = field(default_factory=list)
    sent: list[Datagram] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    public: str | None = None
    """Behind a NAT: the address the other peer sees (ports are kept)."""
    keepalives_received: int = 0

    def drain_events(self) -> list:
        while (event := self.manager.next_event()) is not None:
            self.events.append(event)
        return self.events

    def of(self, cls: type) -> list:
        return [e for e in self.drain_events() if isinstance(e, cls)]


def make_peers(left_kw: dict | None = None, right_kw: dict | None = None, seed: int = 1):
    left_kw, right_kw = left_kw or {}, right_kw or {}
    left = connection("left.example", "right.example", LEFT_NET, RIGHT_NET, **left_kw)
    right = connection("right.example", "left.example", RIGHT_NET, LEFT_NET, **right_kw)
    a = Peer(SaManager([left], random.Random(seed)), LEFT)
    b = Peer(SaManager([right], random.Random(seed + 1)), RIGHT)
    return a, b


Filter = Callable[[Datagram], bool]


def transfer(src: Peer, dst: Peer, clock: Clock, drop: Filter | None = None) -> int:
    """Deliver src's pending datagrams to dst; ``drop`` returning True loses one."""
    moved = 0
    for datagram in src.manager.datagrams_to_send(clock.now):
        src.sent.append(datagram)
        src.sent_at.append(clock.now)
        moved += 1
        if drop is not None and drop(datagram):
            continue
        if datagram.keepalive:
            dst.keepalives_received += 1
            continue
        source = (src.public, datagram.src[1]) if src.public else datagram.src
        target = (dst.address[0], datagram.dst[1]) if dst.public else datagram.dst
        dst.manager.receive_datagram(datagram.data, source, target, clock.now)
    return moved


def run_until_idle(
    a: Peer,
    b: Peer,
    clock: Clock,
    drop: Filter | None = None,
    until: float | None = None,
    max_steps: int = 10_000,
) -> None:
    """Exchange datagrams and fire timers until nothing is pending (or ``until``)."""
    for _ in range(max_steps):
        if transfer(a, b, clock, drop) + transfer(b, a, clock, drop):
            continue
        timers = [t for t in (a.manager.get_timer(), b.manager.get_timer()) if t is not None]
        if not timers or (until is not None and min(timers) > until):
            break
        clock.now = max(clock.now, min(timers))
        a.manager.handle_timer(clock.now)
        b.manager.handle_timer(clock.now)
    else:
        raise RuntimeError(f"peers still busy after {max_steps} steps (a timer that never ends?)")
    a.drain_events()
    b.drain_events()


def established(
    policy: LivenessPolicy,
    right_policy: LivenessPolicy | None = None,
    seed=1,
    left_public: str | None = None,
    **left_kw,
) -> tuple[Peer, Peer, IkeSa, Clock]:
    """Two peers with an IKE SA between them, ``left`` the initiator, on a fresh clock."""
    a, b = make_peers(
        {"liveness": policy, **left_kw}, {"liveness": right_policy or policy}, seed=seed
    )
    a.public = left_public
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 0.001)
    if sa.state is not IkeState.ESTABLISHED:
        raise RuntimeError(f"the IKE SA did not come up: {a.drain_events()}")
    return a, b, sa, clock


def informational_requests(peer: Peer) -> int:
    """INFORMATIONAL requests ``peer`` sent (liveness checks, deletes)."""
    return sum(
        1
        for d in peer.sent
        if not d.keepalive
        and decode_message(d.data).exchange == ExchangeType.INFORMATIONAL
        and not decode_message(d.data).is_response
    )


def left_host(i: int) -> str:
    """Tunnel ``i``'s address on the left with ``many_tunnels(..., distinct=True)``
    (IPv4, like ``RIGHT``: up to 254 tunnels)."""
    if not 0 <= i < 254:
        raise ValueError("distinct left addresses for 254 tunnels at most")
    return f"192.0.2.{i + 1}"


def many_tunnels(n: int, seed: int = 1, distinct: bool = False, **kw) -> tuple[Peer, Peer]:
    """Two peers with ``n`` connections ``t0..`` between them, each with its own identities
    and IPv6 selectors (2001:db8:I::/64 and 2001:db8:8000+I::/64); ``kw`` as for
    ``connection`` on both sides; right names left's address as the peer (a known gateway,
    not held to the per-source limits of a flood). ``distinct``: right accepts tunnel i only from
    ``left_host(i)`` (IKEv1 Main Mode picks its PSK by address), selectors are IPv4 /32s.
    For scale tests and benchmarks."""
    left, right = [], []
    for i in range(n):
        here, there = f"2001:db8:{i:x}::/64", f"2001:db8:{0x8000 + i:x}::/64"
        if distinct:
            here, there = f"203.0.113.{i + 1}/32", f"198.51.100.{i + 1}/32"
        lc = connection(f"l{i}.example", f"r{i}.example", here, there, **kw)
        extra = {"remote_addrs": (left_host(i) if distinct else LEFT[0],)}
        rc = connection(f"r{i}.example", f"l{i}.example", there, here, **kw, **extra)
        left.append(replace(lc, name=f"t{i}"))
        right.append(replace(rc, name=f"t{i}"))
    return (
        Peer(SaManager(left, random.Random(seed)), LEFT),
        Peer(SaManager(right, random.Random(seed + 1)), RIGHT),
    )
