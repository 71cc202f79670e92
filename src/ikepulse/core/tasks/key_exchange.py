"""Nonces and key exchanges shared by the exchanges that make keys (RFC 7296 §1.2, §1.3,
§2.10, §3.9)."""

from __future__ import annotations

from ...crypto.dh import KeyExchange, key_exchange_for
from ...crypto.errors import CryptoError
from ...wire.enums import DhId, NotifyType
from ...wire.payloads import KePayload, NoncePayload
from ..errors import InvalidKePayload, InvalidSyntax
from ..task import Inbound

NONCE_SIZE = 32


def check_nonce(nonce: NoncePayload | None) -> bytes:
    if nonce is None or not 16 <= len(nonce.data) <= 256:
        raise InvalidSyntax("nonce missing or not 16..256 bytes (§3.9)")
    return nonce.data


def fresh_offer(group: DhId, rng) -> tuple[KeyExchange, bytes]:
    """A new key exchange for ``group`` and a new nonce, to repeat a request after
    INVALID_KE_PAYLOAD (§1.2, §1.3)."""
    return key_exchange_for(group, rng), rng.randbytes(NONCE_SIZE)


def create_child_sa_dh(
    ke: KeyExchange | None, group, ke_payload: KePayload | None, initiator: bool, rng, what: str
) -> tuple[KeyExchange, bytes]:
    """The KE part of a CREATE_CHILD_SA (§1.3): our key exchange and g^ir. A responder asks
    for the group it chose with INVALID_KE_PAYLOAD; an initiator gets what it sent."""
    if ke_payload is None or ke_payload.group != group:
        if initiator:
            raise InvalidSyntax(f"{what} response without KE for {group.name}")
        raise InvalidKePayload(f"{what} wants KE for {group.name}", int(group).to_bytes(2, "big"))
    if ke is None or ke.group != group:
        if initiator:
            raise InvalidSyntax(f"{what} response chose {group.name}, which we sent no KE for")
        ke = key_exchange_for(group, rng)
    try:
        return ke, ke.shared_secret(ke_payload.data)
    except CryptoError as exc:
        raise InvalidSyntax(f"invalid {group.name} public value: {exc}") from exc


def group_asked_for(msg: Inbound, proposals, ke: KeyExchange | None) -> DhId | None:
    """The DH group of an INVALID_KE_PAYLOAD answer (§1.3, §1.2) if we proposed it and
    have not used it yet; the request is then repeated with a KE for that group."""
    notify = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
    if notify is None or len(notify.data) < 2:
        return None
    wanted = int.from_bytes(notify.data[:2], "big")
    offered = {g for p in proposals for g in p.dh}
    if wanted not in offered or (ke is not None and ke.group == wanted):
        return None
    return DhId(wanted)
