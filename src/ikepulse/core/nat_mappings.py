"""When each UDP flow last carried an IKE datagram, for NAT-T keepalives (RFC 3948 §2.3).

A NAT in front of us keeps one mapping per flow (our address and port, the peer's), whichever
IKE SA's datagrams refresh it. A keepalive is due when the flow was quiet for the interval,
not when one SA was: several IKE SAs to one peer (a connection per subnet pair) share the flow
and keep its mapping for each other.
"""

from __future__ import annotations

from .events import Address

Flow = tuple[Address, Address]


class NatMappings:
    """The last send on each flow (ESP is not seen here: each SA counts its own)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[Flow, float] = {}

    def carried(self, src: Address, dst: Address, now: float) -> None:
        self._last[(src, dst)] = now

    def last(self, src: Address, dst: Address) -> float | None:
        return self._last.get((src, dst))

    def prune(self, flows_in_use: int) -> None:
        """Forget them all once there are far more than SAs (flows of gone SAs): at worst
        one extra keepalive per flow."""
        if len(self._last) > 2 * flows_in_use + 64:
            self._last.clear()
