"""Messages and payloads as JSON-ready dicts with IANA names (for ``ikepulse decode``)."""

from __future__ import annotations

import dataclasses
import ipaddress
from enum import Enum
from typing import Any

from .enums import IdType
from .message import Message
from .payloads import (
    EncryptedFragmentPayload,
    EncryptedPayload,
    IdiPayload,
    IdrPayload,
    TrafficSelector,
    UnknownPayload,
)
from .sa import Transform


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
