"""Messages and payloads as JSON-ready dicts with IANA names (for ``ikepulse decode``)."""

from __future__ import annotations

import dataclasses
import ipaddress
from enum import Enum
from typing import Any

from .enums import DhId, IdType
from .isakmp import FLAG_AUTH_ONLY, FLAG_COMMIT, FLAG_ENCRYPTED, IsakmpMessage
from .isakmp_enums import (
    KEY_IKE,
    AuthAlgV1,
    AuthMethodV1,
    EncapMode,
    EncrV1,
    EspIdV1,
    HashV1,
    IdV1,
    LifeType,
    PayloadV1,
    Phase1Attr,
    Phase2Attr,
    ProtocolV1,
)
from .isakmp_payloads import IdV1Payload, NotifyV1Payload, UnknownV1, payload_type
from .isakmp_sa import AttributeV1, ProposalV1, SaV1
from .message import Message
from .payloads import (
    EncryptedFragmentPayload,
    EncryptedPayload,
    IdiPayload,
    IdrPayload,
    UnknownPayload,
)
from .sa import Transform
from .traffic_selectors import TrafficSelector


def _value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _fields(value)
    return value


def _fields(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        out[f.name] = _value(getattr(obj, f.name))
    if isinstance(obj, Transform):
        others = [a for a in out.pop("attributes") if a["type"] != "KEY_LENGTH"]
        if obj.key_length is not None:
            out["key_length"] = obj.key_length
        if others:
            out["attributes"] = others
    if isinstance(obj, TrafficSelector):
        out["ts_type"] = obj.ts_type.name
        out["text"] = str(obj)
    return out


def describe_payload(payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": payload.TYPE.name}
    if isinstance(payload, EncryptedPayload | EncryptedFragmentPayload):
        body["encrypted"] = True
        body["next_payload"] = payload.first_inner.name
        body["length"] = len(payload.body)
        if isinstance(payload, EncryptedFragmentPayload):
            body.update(fragment=payload.number, total=payload.total)
        return body
    if isinstance(payload, UnknownPayload):
        body.update(critical=payload.critical, length=len(payload.body), data=payload.body.hex())
        return body
    fields = _fields(payload)
    if "type" in fields:  # e.g. the Notify message type
        fields[f"{payload.TYPE.name.lower()}_type"] = fields.pop("type")
    body.update(fields)
    if isinstance(payload, IdiPayload | IdrPayload) and payload.id_type != IdType.ID_DER_ASN1_DN:
        body["id"] = payload.text
    return body


def describe_message(msg: Message) -> dict[str, Any]:
    return {
        "spi_i": msg.spi_i.hex(),
        "spi_r": msg.spi_r.hex(),
        "version": f"{msg.version >> 4}.{msg.version & 0xF}",
        "exchange": msg.exchange.name,
        "flags": [
            name
            for bit, name in ((0x08, "INITIATOR"), (0x10, "VERSION"), (0x20, "RESPONSE"))
            if msg.flags & bit
        ],
        "message_id": msg.message_id,
        "payloads": [describe_payload(p) for p in msg.payloads],
    }


_PHASE1_VALUES: dict[int, type[Enum]] = {
    Phase1Attr.ENCRYPTION: EncrV1,
    Phase1Attr.HASH: HashV1,
    Phase1Attr.AUTH_METHOD: AuthMethodV1,
    Phase1Attr.GROUP: DhId,
    Phase1Attr.LIFE_TYPE: LifeType,
}
_PHASE2_VALUES: dict[int, type[Enum]] = {
    Phase2Attr.ENCAP_MODE: EncapMode,
    Phase2Attr.AUTH_ALG: AuthAlgV1,
    Phase2Attr.GROUP: DhId,
    Phase2Attr.LIFE_TYPE: LifeType,
}
_V1_FLAGS = ((FLAG_ENCRYPTED, "ENCRYPTED"), (FLAG_COMMIT, "COMMIT"), (FLAG_AUTH_ONLY, "AUTH_ONLY"))


def _attribute_v1(attr: AttributeV1, phase1: bool) -> dict[str, Any]:
    kind = Phase1Attr(attr.type) if phase1 else Phase2Attr(attr.type)
    values = _PHASE1_VALUES if phase1 else _PHASE2_VALUES
    out: dict[str, Any] = {"type": kind.name}
    if attr.type in values:
        out["value"] = values[attr.type](attr.number).name
    else:
        wide = isinstance(attr.value, bytes) and len(attr.value) > 8
        out["value"] = attr.value.hex() if wide else attr.number
    return out


def _proposal_v1(proposal: ProposalV1) -> dict[str, Any]:
    phase1 = proposal.protocol == ProtocolV1.ISAKMP
    transforms = []
    for t in proposal.transforms:
        if phase1:
            tid: Any = "KEY_IKE" if t.transform_id == KEY_IKE else t.transform_id
        elif proposal.protocol == ProtocolV1.ESP:
            tid = EspIdV1(t.transform_id).name
        else:
            tid = t.transform_id
        transforms.append(
            {
                "number": t.number,
                "transform_id": tid,
                "attributes": [_attribute_v1(a, phase1) for a in t.attributes],
            }
        )
    return {
        "number": proposal.number,
        "protocol": proposal.protocol.name,
        "spi": proposal.spi.hex(),
        "transforms": transforms,
    }


def describe_payload_v1(payload: Any) -> dict[str, Any]:
    """One IKEv1 payload, SA attributes named by the proposal's protocol."""
    body: dict[str, Any] = {"type": PayloadV1(payload_type(payload)).name}
    if isinstance(payload, UnknownV1):
        body.update(length=len(payload.body), data=payload.body.hex())
    elif isinstance(payload, SaV1):
        body.update(doi=payload.doi, situation=payload.situation)
        body["proposals"] = [_proposal_v1(p) for p in payload.proposals]
    else:
        fields = _fields(payload)
        if isinstance(payload, NotifyV1Payload):
            fields["notify_type"] = fields.pop("type")
        body.update(fields)
        if isinstance(payload, IdV1Payload) and payload.id_type in _ADDRESS_IDS:
            try:
                body["id"] = str(ipaddress.ip_address(payload.data))
            except ValueError:
                pass
        elif isinstance(payload, IdV1Payload) and payload.id_type in _TEXT_IDS:
            body["id"] = payload.data.decode("utf-8", "replace")
    return body


_ADDRESS_IDS = (IdV1.IPV4_ADDR, IdV1.IPV6_ADDR)
_TEXT_IDS = (IdV1.FQDN, IdV1.USER_FQDN, IdV1.KEY_ID)


def describe_isakmp(msg: IsakmpMessage) -> dict[str, Any]:
    """An IKEv1 message: header, then each payload or ``<encrypted N bytes>``."""
    out: dict[str, Any] = {
        "icookie": msg.icookie.hex(),
        "rcookie": msg.rcookie.hex(),
        "version": "1",
        "exchange": msg.exchange.name,
        "flags": [name for bit, name in _V1_FLAGS if msg.flags & bit],
        "message_id": msg.message_id,
    }
    if msg.chain is None:
        out["next_payload"] = PayloadV1(msg.first_payload).name
        out["payloads"] = f"<encrypted {len(msg.encrypted)} bytes>"
    else:
        out["payloads"] = [describe_payload_v1(p) for p in msg.chain.payloads]
    return out
