"""Which payloads each exchange may carry, how often, and whether inside SK (RFC 7296 §1, §3).

Checked after decoding and before any task sees a message ("parse, then validate, then act").
"""

from __future__ import annotations

from dataclasses import dataclass

from .enums import ExchangeType, NotifyType, PayloadType
from .message import Message
from .payloads import EncryptedPayload, NotifyPayload, Payload, UnknownPayload

MANY = 64
P = PayloadType


@dataclass(frozen=True, slots=True)
class Rule:
    min: int
    max: int
    encrypted: bool


class RuleViolation(Exception):
    """The message breaks its exchange's payload rules (answered with INVALID_SYNTAX)."""


class CriticalPayloadUnknown(RuleViolation):
    """An unknown payload with the critical bit set (§2.5: UNSUPPORTED_CRITICAL_PAYLOAD)."""

    def __init__(self, payload_type: PayloadType) -> None:
        super().__init__(f"unsupported critical payload {payload_type.name}")
        self.payload_type = payload_type


def _rules(encrypted: bool, **counts: tuple[int, int]) -> dict[PayloadType, Rule]:
    table = {P[name]: Rule(lo, hi, encrypted) for name, (lo, hi) in counts.items()}
    table[P.NOTIFY] = Rule(0, MANY, encrypted)
    table[P.VENDOR] = Rule(0, MANY, encrypted)
    return table


_AUTH = dict(
    IDI=(0, 1),
    IDR=(0, 1),
    CERT=(0, 16),
    CERTREQ=(0, 16),
    AUTH=(0, 1),
    EAP=(0, 1),
    CP=(0, 1),
    SA=(0, 1),
    TSI=(0, 1),
    TSR=(0, 1),
)
RULES: dict[tuple[ExchangeType, bool], dict[PayloadType, Rule]] = {
    (ExchangeType.IKE_SA_INIT, False): _rules(False, SA=(1, 1), KE=(1, 1), NONCE=(1, 1)),
    (ExchangeType.IKE_SA_INIT, True): _rules(
        False, SA=(1, 1), KE=(1, 1), NONCE=(1, 1), CERTREQ=(0, 16)
    ),
    (ExchangeType.IKE_AUTH, False): _rules(True, **_AUTH),
    (ExchangeType.IKE_AUTH, True): _rules(True, **_AUTH),
    (ExchangeType.CREATE_CHILD_SA, False): _rules(
        True, SA=(1, 1), NONCE=(1, 1), KE=(0, 1), TSI=(0, 1), TSR=(0, 1)
    ),
    (ExchangeType.CREATE_CHILD_SA, True): _rules(
        True, SA=(1, 1), NONCE=(1, 1), KE=(0, 1), TSI=(0, 1), TSR=(0, 1)
    ),
    (ExchangeType.INFORMATIONAL, False): _rules(True, DELETE=(0, MANY), CP=(0, 1)),
    (ExchangeType.INFORMATIONAL, True): _rules(True, DELETE=(0, MANY), CP=(0, 1)),
}


_NEEDS_SK = {key: any(rule.encrypted for rule in rules.values()) for key, rules in RULES.items()}
_SK = (P.SK, P.SKF)
_EMPTY_FITS = {
    key: _NEEDS_SK[key] and all(rule.min == 0 for rule in rules.values())
    for key, rules in RULES.items()
}
"""The exchanges a message with an SK payload and nothing else, inside or out, fits."""
_MINIMUMS = {
    key: [(ptype, rule.min) for ptype, rule in rules.items() if rule.min]
    for key, rules in RULES.items()
}
"""Per exchange, the payloads it needs at least one of (or more)."""


def check_rules(msg: Message, inner: list[Payload] | tuple[Payload, ...] = ()) -> None:
    """Raise RuleViolation unless ``msg`` (with decrypted ``inner`` payloads) fits its rules.

    One pass over the payloads (every message is checked); the first violation is reported
    in the order: SK presence, an unknown critical payload (§2.5), a payload on the wrong
    side of SK, counts, payloads the exchange does not allow."""
    key = (msg.exchange, msg.is_response)
    if not inner and _EMPTY_FITS.get(key) and len(msg.payloads) == 1:
        if isinstance(msg.payloads[0], EncryptedPayload):
            return  # nothing but SK, empty inside (a liveness check, §2.4): fits, as below
    rules = RULES.get(key)
    if rules is None:
        raise RuleViolation(f"exchange {msg.exchange.name} is not supported")
    outer = [p for p in msg.payloads if p.TYPE not in _SK]
    has_sk = len(outer) != len(msg.payloads)
    needs_sk = _NEEDS_SK[key]
    if needs_sk and not has_sk:
        raise RuleViolation(f"{msg.exchange.name} message without an SK payload")
    if has_sk and not needs_sk:
        raise RuleViolation(f"{msg.exchange.name} message must not be encrypted")
    counts: dict[PayloadType, int] = {}
    critical: PayloadType | None = None
    misplaced: str | None = None
    # A response with an error notify (or asking for a COOKIE) is complete without the
    # minimums; a request never is (§2.21: error notifies travel in responses).
    complete = False
    response = msg.is_response
    for inside, payloads in ((False, outer), (True, inner)):
        for payload in payloads:
            ptype = payload.TYPE
            counts[ptype] = counts.get(ptype, 0) + 1
            if critical is None and isinstance(payload, UnknownPayload) and payload.critical:
                critical = payload.type
            rule = rules.get(ptype)
            if misplaced is None and rule is not None and rule.encrypted != inside:
                misplaced = f"{ptype.name} payload {'inside' if inside else 'outside'} SK"
            if (
                response
                and not complete
                and isinstance(payload, NotifyPayload)
                and (payload.type.is_error or payload.type == NotifyType.COOKIE)
            ):
                complete = True
    if critical is not None:
        raise CriticalPayloadUnknown(critical)
    if misplaced is not None:
        raise RuleViolation(misplaced)
    violated = False  # loops, not generators: every message is checked
    for ptype, count in counts.items():
        rule = rules.get(ptype)
        if rule is not None and count > rule.max:
            violated = True
    if not complete:
        for ptype, least in _MINIMUMS[key]:
            if counts.get(ptype, 0) < least:
                violated = True
    if violated:
        for ptype, rule in rules.items():  # there is a violation: report the first
            count = counts.get(ptype, 0)
            if count > rule.max:
                raise RuleViolation(f"{count} {ptype.name} payloads, at most {rule.max}")
            if count < rule.min and not complete:
                raise RuleViolation(f"{msg.exchange.name} without a {ptype.name} payload")
    for ptype in counts:
        if ptype not in rules and ptype.known:
            raise RuleViolation(f"{ptype.name} payload not allowed in {msg.exchange.name}")
