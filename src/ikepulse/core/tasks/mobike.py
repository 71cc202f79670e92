"""MOBIKE (RFC 4555): MOBIKE_SUPPORTED in IKE_AUTH, and in INFORMATIONAL exchanges
UPDATE_SA_ADDRESSES with NAT detection and COOKIE2, address lists, and the NAT mapping check
that rides on our liveness checks.

    IKE_AUTH         N(MOBIKE_SUPPORTED) + our address list, both ways (§3.2, §3.6)
    UPDATE           N(UPDATE_SA_ADDRESSES) N(COOKIE2) NAT-D  ->  NAT-D N(COOKIE2)
                     (§3.5; COOKIE2 is the return routability check of §3.7)
    ADDRESSES        N(ADDITIONAL_*_ADDRESS)... | N(NO_ADDITIONAL_ADDRESSES)  ->  (empty)
    CHECK            liveness check; behind a NAT the original initiator adds NAT-D and
                     moves (UPDATE) when the peer sees us at a new address or port (§3.8)
"""

from __future__ import annotations

import hmac
from enum import Enum
from typing import TYPE_CHECKING

from ...wire.enums import NotifyType
from ...wire.payloads import NotifyPayload, Payload
from ..errors import IkeError
from ..events import Address
from ..mobility import address_list, peer_address_list
from ..task import Inbound, Purpose, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost

COOKIE2_SIZE = 16


class Cookie2Mismatch(IkeError):
    """§3.7: the answer did not echo our COOKIE2 (the return routability check failed):
    the IKE SA MUST be closed."""


class Kind(Enum):
    """What our INFORMATIONAL request carries."""

    CHECK = "check"
    UPDATE = "update"
    ADDRESSES = "addresses"


def _natd(sa: TaskHost, source: Address, destination: Address) -> list[NotifyPayload]:
    return [
        NotifyPayload(
            NotifyType.NAT_DETECTION_SOURCE_IP, sa.mobility.natd(sa.spi_i, sa.spi_r, source)
        ),
        NotifyPayload(
            NotifyType.NAT_DETECTION_DESTINATION_IP,
            sa.mobility.natd(sa.spi_i, sa.spi_r, destination),
        ),
    ]


def _natd_seen(sa: TaskHost, msg: Inbound) -> tuple[bool, bool, bytes] | None:
    """(NAT in front of us, NAT in front of the peer, the peer's destination hash) from the
    NAT-D notifies of ``msg`` and the addresses it travelled between, or None without them."""
    notifies = msg.all(NotifyPayload)
    sources = [n.data for n in notifies if n.type == NotifyType.NAT_DETECTION_SOURCE_IP]
    destination = msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
    if not sources or destination is None or msg.src is None or msg.dst is None:
        return None
    local = sa.mobility.natd(sa.spi_i, sa.spi_r, msg.dst) != destination.data
    remote = sa.mobility.natd(sa.spi_i, sa.spi_r, msg.src) not in sources
    return local, remote, destination.data


class MobikeSupport(Task):
    """IKE_AUTH: offer and accept MOBIKE, exchange address lists (§3.2, §3.6)."""

    def __init__(self, sa: TaskHost, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.peer_supports = False

    def _wanted(self) -> bool:
        return self.sa.connection is not None and self.sa.connection.mobike

    def build(self, out: list[Payload]) -> None:
        if not self._wanted() or not (self.initiator or self.peer_supports):
            return
        sa = self.sa
        out.append(NotifyPayload(NotifyType.MOBIKE_SUPPORTED))
        out.extend(address_list(sa.manager.local_addresses, sa.local[0]))
        sa.mobility.announced = frozenset(sa.manager.local_addresses) - {sa.local[0]}

    def process(self, msg: Inbound) -> Status:
        self.peer_supports = msg.notify(NotifyType.MOBIKE_SUPPORTED) is not None
        if self.peer_supports and self._wanted():
            self.sa.mobility.negotiated(original_initiator=self.sa.initiator)
            listed = peer_address_list(msg.all(NotifyPayload))
            if listed is not None:
                self.sa.mobility.peer_addresses = listed
        return Status.DONE


class Mobike(Task):
    """The MOBIKE part of an INFORMATIONAL exchange, for either role; without MOBIKE
    negotiated it adds nothing and ignores what it gets."""

    def __init__(self, sa: TaskHost, initiator: bool, kind: Kind = Kind.CHECK) -> None:
        super().__init__(sa, initiator)
        self.kind = kind
        self.cookie2: bytes | None = None
        self.natd: tuple[bool, bool, bytes] | None = None
        self.move_to: tuple[Address, Address] | None = None
        self.mapping_changed = False
        self.path: tuple[Address, Address] | None = None
        """Responder: (where the request arrived, where it came from)."""

    # --- our request -------------------------------------------------------------------

    def build(self, out: list[Payload]) -> None:
        sa = self.sa
        if not self.initiator:
            self._build_answer(out)
            return
        if not sa.mobility.enabled:
            return
        natd = False
        if self.kind is Kind.UPDATE:
            self.cookie2 = sa.rng.randbytes(COOKIE2_SIZE)
            sa.count("mobike_updates_sent")
            out.append(NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES))
            out.append(NotifyPayload(NotifyType.COOKIE2, self.cookie2))
            natd = True
        elif self.kind is Kind.ADDRESSES:
            addresses = sa.manager.local_addresses
            out.extend(address_list(addresses, sa.local[0]))
            sa.mobility.announced = frozenset(addresses) - {sa.local[0]}
        else:  # a liveness check: behind a NAT, learn whether the mapping changed
            natd = sa.mobility.original_initiator and sa.nat_local
        if natd:
            out.extend(_natd(sa, sa.local, sa.remote))

    def process(self, msg: Inbound) -> Status:
        sa = self.sa
        if not self.initiator:
            cookie2 = msg.notify(NotifyType.COOKIE2)  # echoed in any case (§4.2.5)
            self.cookie2 = None if cookie2 is None else cookie2.data
            if sa.mobility.enabled:
                self._process_request(msg)
            return Status.DONE
        if not sa.mobility.enabled:
            return Status.DONE
        if self.cookie2 is not None:
            echoed = msg.notify(NotifyType.COOKIE2)
            if echoed is None or not hmac.compare_digest(echoed.data, self.cookie2):
                raise Cookie2Mismatch("COOKIE2 mismatch in the answer to UPDATE_SA_ADDRESSES")
        self.natd = _natd_seen(sa, msg)
        if self.natd is None:
            return Status.DONE
        local_nat, _, mapping = self.natd
        if self.kind is Kind.CHECK:
            # No mapping known yet counts as changed: the check ran because the peer fell
            # silent, and §3.8 allows updating on a mere suspicion.
            known = sa.mobility.nat_mapping
            self.mapping_changed = mapping != known or not local_nat
        sa.mobility.nat_mapping = mapping
        return Status.DONE

    def finish(self, now: float) -> None:
        sa = self.sa
        if self.initiator:
            if self.kind is Kind.UPDATE and self.natd is not None:
                sa.update_hosts(sa.local, sa.remote, nat=self.natd[:2])
            elif self.mapping_changed and not sa.in_flight(Purpose.MOBIKE_UPDATE):
                sa.count("mobike_nat_mapping_changes")
                sa.start(Purpose.MOBIKE_UPDATE, now)
            return
        if self.move_to is not None:
            sa.update_hosts(*self.move_to, nat=None if self.natd is None else self.natd[:2])
            sa.count("mobike_updates_received")

    # --- the peer's request ------------------------------------------------------------

    def _process_request(self, msg: Inbound) -> None:
        sa = self.sa
        self.natd = _natd_seen(sa, msg)
        listed = peer_address_list(msg.all(NotifyPayload))
        if listed is not None:
            sa.mobility.peer_addresses = listed
        path = self.path = (msg.dst, msg.src)
        if msg.notify(NotifyType.UPDATE_SA_ADDRESSES) is not None:
            if sa.mobility.original_initiator:
                return  # §3.5: only the original initiator asks the other side to move
            self.move_to = path
        elif listed is not None and sa.mobility.original_initiator and msg.src != sa.remote:
            # The responder moved and told us its list from its new address (§3.6).
            self.move_to = path

    def _build_answer(self, out: list[Payload]) -> None:
        if self.natd is not None and self.path is not None:
            # Hashes of where the request arrived (us) and where it came from (the peer).
            out.extend(_natd(self.sa, *self.path))
        if self.cookie2 is not None:
            out.append(NotifyPayload(NotifyType.COOKIE2, self.cookie2))
