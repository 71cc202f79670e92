"""IKE fragmentation of one IKE SA (RFC 7383): the policy, whether the peer announced
support, when a message we send is cut into SKF fragments, and the reassembly of the
fragmented messages we receive.

Called where messages are protected and unprotected (``IkeSa.encode``/``unprotect``);
the task manager only sees that a message may be several datagrams, and that a fragment
may complete nothing yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..crypto.errors import CryptoError
from ..wire.buffer import DecodeError
from ..wire.enums import ExchangeType
from ..wire.message import Message, decode_payloads
from ..wire.payloads import EncryptedFragmentPayload, Payload
from .errors import Dropped
from .reassembly import FragmentDropped, Reassembly

IKE_PORT = 500
Address = tuple[str, int]


class Fragmentation(Enum):
    """swanctl's ``fragmentation``: announce support and use it (YES), announce it but
    never fragment our messages (ACCEPT), fragment even when the peer did not announce it
    (FORCE, as strongSwan does), or neither announce nor accept it (NO)."""

    YES = "yes"
    ACCEPT = "accept"
    FORCE = "force"
    NO = "no"


@dataclass(frozen=True, slots=True)
class FragmentPolicy:
    """A connection's fragmentation knobs, built by ``ikepulse.config``."""

    mode: Fragmentation
    size: int
    """Largest IP datagram of an IKE message we send, IP and UDP headers and the non-ESP
    marker included (strongSwan's ``fragment_size``)."""

    @property
    def announced(self) -> bool:
        """We send IKEV2_FRAGMENTATION_SUPPORTED (and accept fragments)."""
        return self.mode is not Fragmentation.NO


def max_message(size: int, local: Address, remote: Address) -> int:
    """IKE message octets in an IP datagram of ``size``: less the IP header (no options),
    UDP header and, off port 500, the non-ESP marker (RFC 3948 §2.2)."""
    ip = 40 if ":" in local[0] else 20  # the runtime passes valid addresses
    marker = 0 if IKE_PORT in (local[1], remote[1]) else 4
    return size - ip - 8 - marker


Opened = tuple[bytes, Message, list[Payload]]
"""A datagram (the first fragment's, if fragmented), its decoded message, the inner payloads."""


class Fragments:
    """One IKE SA's fragmentation state: the peer's announcement and one reassembly per
    direction (requests from the peer, responses to ours)."""

    def __init__(self, count: Callable[[str], None]) -> None:
        self.peer_supports = False
        self._count = count
        self._requests = Reassembly(count)
        self._responses = Reassembly(count)

    def peer_announced(self, supported: bool) -> None:
        """The peer's IKE_SA_INIT carried IKEV2_FRAGMENTATION_SUPPORTED (or not)."""
        self.peer_supports = supported

    def carry_over(self, old: Fragments) -> None:
        """A rekeyed IKE SA (§2.18) keeps what its predecessor negotiated."""
        self.peer_supports = old.peer_supports

    def limit(self, policy: FragmentPolicy, local: Address, remote: Address) -> int | None:
        """The largest IKE message we send whole, or None if we never fragment (§2.5:
        only when both announced support, or forced)."""
        mode = policy.mode
        if mode is Fragmentation.FORCE or (mode is Fragmentation.YES and self.peer_supports):
            return max_message(policy.size, local, remote)
        return None

    @property
    def held(self) -> int:
        """Fragments kept for messages not yet complete."""
        return self._requests.held + self._responses.held

    def open(
        self,
        raw: bytes,
        msg: Message,
        open_chunk: Callable[[bytes, Message], bytes],
        policy: FragmentPolicy,
        now: float,
    ) -> Opened | None:
        """One SKF fragment: checked, then verified and decrypted by ``open_chunk``, then
        kept (§2.6: an unauthenticated fragment never is); the whole message once it is
        complete, else None."""
        skf = msg.encrypted
        assert isinstance(skf, EncryptedFragmentPayload)
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            raise FragmentDropped("ike_sa_init", "IKE_SA_INIT is never fragmented (§2.5)")
        if not policy.announced:
            raise FragmentDropped("not_negotiated", "fragmentation = no")
        buffer = self._responses if msg.is_response else self._requests
        buffer.check(msg, skf.number, skf.total, now)
        try:
            chunk = open_chunk(raw, msg)
        except CryptoError as exc:
            raise FragmentDropped("invalid_icv", f"SKF does not verify: {exc}") from exc
        done = buffer.add(raw, msg, skf.number, skf.total, chunk, now)
        self._count("fragments_received")
        if done is None:
            return None
        self._count("fragmented_messages_received")
        try:
            inner = decode_payloads(done.plaintext, done.first_inner)
        except DecodeError as exc:
            raise Dropped("malformed", f"reassembled payloads: {exc}") from exc
        return done.raw, done.message, inner
