"""IKEv1 proposals as the IKEv2 model (RFC 2409 App. A, RFC 2407 §4.4-§4.5).

An ISAKMP transform is a complete suite; each one is translated into a one-transform-per-type
IKEv2 ``Proposal`` so that ``negotiate.select`` makes the choice for both versions, and our
``CryptoProposal``s are spelled out as ISAKMP transforms the other way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ...crypto.errors import transform_name
from ...wire.enums import EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType
from ...wire.isakmp_enums import (
    KEY_IKE,
    AuthAlgV1,
    AuthMethodV1,
    EncapMode,
    EncrV1,
    EspIdV1,
    HashV1,
    LifeType,
    Phase1Attr,
    Phase2Attr,
    ProtocolV1,
)
from ...wire.isakmp_sa import AttributeV1, ProposalV1, SaV1, TransformV1
from ...wire.sa import Proposal, Transform
from ..errors import NoProposalChosen
from ..negotiate import Suite, select
from ..proposal import IMPLIED_PRF, CryptoProposal

PHASE1_ENCR = {EncrV1.AES_CBC: EncrId.AES_CBC, EncrV1.TRIPLE_DES: EncrId.TRIPLE_DES}
HASH_PRF = {
    HashV1.SHA1: (PrfId.HMAC_SHA1, IntegId.HMAC_SHA1_96),
    HashV1.SHA2_256: (PrfId.HMAC_SHA2_256, IntegId.HMAC_SHA2_256_128),
    HashV1.SHA2_384: (PrfId.HMAC_SHA2_384, IntegId.HMAC_SHA2_384_192),
    HashV1.SHA2_512: (PrfId.HMAC_SHA2_512, IntegId.HMAC_SHA2_512_256),
}
PRF_HASH = {prf: hash_id for hash_id, (prf, _) in HASH_PRF.items()}
ESP_ENCR = {
    EspIdV1.AES_CBC: EncrId.AES_CBC,
    EspIdV1.TRIPLE_DES: EncrId.TRIPLE_DES,
    EspIdV1.AES_GCM_16: EncrId.AES_GCM_16,
    EspIdV1.AES_GCM_12: EncrId.AES_GCM_12,
    EspIdV1.AES_GCM_8: EncrId.AES_GCM_8,
    EspIdV1.NULL: EncrId.NULL,
}
ESP_INTEG = {
    AuthAlgV1.HMAC_SHA1: IntegId.HMAC_SHA1_96,
    AuthAlgV1.HMAC_SHA2_256: IntegId.HMAC_SHA2_256_128,
    AuthAlgV1.HMAC_SHA2_384: IntegId.HMAC_SHA2_384_192,
    AuthAlgV1.HMAC_SHA2_512: IntegId.HMAC_SHA2_512_256,
}
_V1_ENCR = {v: k for k, v in PHASE1_ENCR.items()}
_V1_ESP = {v: k for k, v in ESP_ENCR.items()}
_V1_AUTH = {v: k for k, v in ESP_INTEG.items()}
UDP_MODES = {
    EncapMode.UDP_TUNNEL: EncapMode.TUNNEL,
    EncapMode.UDP_TRANSPORT: EncapMode.TRANSPORT,
    EncapMode.UDP_TUNNEL_DRAFT: EncapMode.TUNNEL,
    EncapMode.UDP_TRANSPORT_DRAFT: EncapMode.TRANSPORT,
}


@dataclass(frozen=True, slots=True)
class Phase1Choice:
    """The ISAKMP transform both ends settled on (RFC 2409 §5)."""

    transform: TransformV1
    suite: Suite
    auth: AuthMethodV1
    lifetime: float | None

    @property
    def hash(self) -> HashV1:
        return PRF_HASH[self.suite.prf]


def _attrs(transform: TransformV1) -> dict[int, int | bytes]:
    return {a.type: a.value for a in reversed(transform.attributes)}


def _number(value: int | bytes | None) -> int | None:
    if isinstance(value, bytes):
        return int.from_bytes(value, "big") if 0 < len(value) <= 8 else None
    return value


def _lifetime(attrs: dict, life_type: int, duration: int) -> float | None:
    """The seconds of a transform's lifetime, if it gives one (RFC 2407 §4.5)."""
    if _number(attrs.get(life_type)) == LifeType.SECONDS:
        return _number(attrs.get(duration))
    return None


def _phase1_as_v2(number: int, transform: TransformV1) -> Proposal | None:
    attrs = _attrs(transform)
    encr = PHASE1_ENCR.get(_number(attrs.get(Phase1Attr.ENCRYPTION)))
    hashes = HASH_PRF.get(_number(attrs.get(Phase1Attr.HASH)))
    group = _number(attrs.get(Phase1Attr.GROUP))
    if transform.transform_id != KEY_IKE or encr is None or hashes is None or group is None:
        return None
    bits = _number(attrs.get(Phase1Attr.KEY_LENGTH))
    prf, integ = hashes
    return Proposal(
        number,
        ProtocolId.IKE,
        b"",
        (
            Transform.make(TransformType.ENCR, encr, bits),
            Transform.make(TransformType.PRF, prf),
            Transform.make(TransformType.INTEG, integ),
            Transform.make(TransformType.DH, group),
        ),
    )


def select_phase1(
    ours: Sequence[CryptoProposal], auth: AuthMethodV1, offered: SaV1
) -> Phase1Choice:
    """Our first proposal the initiator's SA payload offers with our auth method."""
    converted, by_number, methods = [], {}, set()
    for proposal in offered.proposals[:1]:
        if proposal.protocol != ProtocolV1.ISAKMP:
            continue
        for index, transform in enumerate(proposal.transforms):
            method = _number(_attrs(transform).get(Phase1Attr.AUTH_METHOD))
            methods.add(method)
            v2 = _phase1_as_v2(index + 1, transform) if method == auth else None
            if v2 is not None:
                converted.append(v2)
                by_number[index + 1] = transform
    if not converted:
        if methods and auth not in methods:
            theirs = ", ".join(sorted(transform_name(AuthMethodV1, m) for m in methods))
            raise NoProposalChosen(f"the peer authenticates with {theirs}, we with {auth.name}")
        raise NoProposalChosen(f"no ISAKMP transform of the peer uses {auth.name} and ours")
    chosen, suite = select(ours, converted)
    transform = by_number[chosen.number]
    lifetime = _lifetime(_attrs(transform), Phase1Attr.LIFE_TYPE, Phase1Attr.LIFE_DURATION)
    return Phase1Choice(transform, suite, auth, lifetime)


def accept_phase1(ours: Sequence[CryptoProposal], auth: AuthMethodV1, chosen: SaV1) -> Phase1Choice:
    """The responder's single transform must be one we offered (RFC 2409 §5)."""
    if len(chosen.proposals) != 1 or len(chosen.proposals[0].transforms) != 1:
        raise NoProposalChosen("the responder did not choose exactly one ISAKMP transform")
    return select_phase1(ours, auth, chosen)


def _hashes(p: CryptoProposal) -> list[HashV1]:
    prfs = p.prf or tuple(IMPLIED_PRF[i] for i in p.integ if i in IMPLIED_PRF)
    return [PRF_HASH[prf] for prf in prfs if prf in PRF_HASH]


def phase1_sa(ours: Sequence[CryptoProposal], auth: AuthMethodV1, lifetime: int) -> SaV1:
    """Our proposals as one ISAKMP proposal of complete transforms, in our order."""
    transforms = []
    for p in ours:
        for (encr, bits), hash_id, group in itertools.product(p.encr, _hashes(p), p.dh):
            if encr not in _V1_ENCR:
                continue
            attrs = [
                AttributeV1(Phase1Attr.ENCRYPTION, _V1_ENCR[encr]),
                *([AttributeV1(Phase1Attr.KEY_LENGTH, bits)] if bits else []),
                AttributeV1(Phase1Attr.HASH, hash_id),
                AttributeV1(Phase1Attr.AUTH_METHOD, auth),
                AttributeV1(Phase1Attr.GROUP, group),
                AttributeV1(Phase1Attr.LIFE_TYPE, LifeType.SECONDS),
                AttributeV1(Phase1Attr.LIFE_DURATION, lifetime),
            ]
            transforms.append(TransformV1(len(transforms) + 1, KEY_IKE, tuple(attrs)))
    if not transforms:
        raise NoProposalChosen("no configured IKE proposal can be spelled in IKEv1")
    return SaV1((ProposalV1(1, ProtocolV1.ISAKMP, b"", tuple(transforms)),))


# --- phase 2 (Quick Mode) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EspChoice:
    """The ESP transform of a Quick Mode (RFC 2407 §4.5)."""

    proposal: ProposalV1
    """The chosen proposal with its single transform, as the responder sends it back."""
    suite: Suite
    mode: EncapMode
    lifetime: float | None


def _esp_as_v2(number: int, spi: bytes, transform: TransformV1) -> Proposal | None:
    attrs = _attrs(transform)
    encr = ESP_ENCR.get(EspIdV1(transform.transform_id))
    if encr is None:
        return None
    out = [Transform.make(TransformType.ENCR, encr, _number(attrs.get(Phase2Attr.KEY_LENGTH)))]
    auth = _number(attrs.get(Phase2Attr.AUTH_ALG))
    if auth is not None:
        if auth not in ESP_INTEG:
            return None
        out.append(Transform.make(TransformType.INTEG, ESP_INTEG[auth]))
    group = _number(attrs.get(Phase2Attr.GROUP))
    if group:
        out.append(Transform.make(TransformType.DH, group))
    esn = EsnId.ESN if _number(attrs.get(Phase2Attr.ESN)) == 1 else EsnId.NO_ESN
    out.append(Transform.make(TransformType.ESN, esn))
    return Proposal(number, ProtocolId.ESP, spi, tuple(out))


def select_esp(ours: Sequence[CryptoProposal], offered: SaV1) -> EspChoice:
    """Our first ESP proposal the peer offers; PFS when ours carries a group."""
    converted, by_number = [], {}
    for proposal in offered.proposals:
        if proposal.protocol != ProtocolV1.ESP:
            continue
        for transform in proposal.transforms:
            number = len(converted) + 1
            v2 = _esp_as_v2(number, proposal.spi, transform)
            if v2 is not None:
                converted.append(v2)
                by_number[number] = (proposal, transform)
    if not converted:
        raise NoProposalChosen("the peer offered no ESP transform we know")
    chosen, suite = select(ours, converted)
    proposal, transform = by_number[chosen.number]
    attrs = _attrs(transform)
    mode = EncapMode(_number(attrs.get(Phase2Attr.ENCAP_MODE)) or EncapMode.TUNNEL)
    lifetime = _lifetime(attrs, Phase2Attr.LIFE_TYPE, Phase2Attr.LIFE_DURATION)
    single = ProposalV1(proposal.number, proposal.protocol, proposal.spi, (transform,))
    return EspChoice(single, suite, mode, lifetime)


def esp_sa(
    ours: Sequence[CryptoProposal],
    spi: bytes,
    mode: EncapMode,
    lifetime: tuple[int | None, int | None],
    pfs: bool,
) -> SaV1:
    """Our ESP proposals as one ESP proposal of complete transforms (with the PFS group of
    each when ``pfs``); ``lifetime`` is (seconds, kilobytes), either None for none."""
    seconds, kilobytes = lifetime
    lives = []
    if seconds:
        lives += [
            AttributeV1(Phase2Attr.LIFE_TYPE, LifeType.SECONDS),
            AttributeV1(Phase2Attr.LIFE_DURATION, seconds),
        ]
    if kilobytes:
        lives += [
            AttributeV1(Phase2Attr.LIFE_TYPE, LifeType.KILOBYTES),
            AttributeV1(Phase2Attr.LIFE_DURATION, kilobytes),
        ]
    transforms = []
    for p in ours:
        groups = p.dh if pfs and p.dh else (None,)
        integs = p.integ or (None,)
        for (encr, bits), integ, group in itertools.product(p.encr, integs, groups):
            if encr not in _V1_ESP or (integ is not None and integ not in _V1_AUTH):
                continue
            attrs = [
                *lives,
                *([AttributeV1(Phase2Attr.GROUP, group)] if group else []),
                AttributeV1(Phase2Attr.ENCAP_MODE, mode),
                *([AttributeV1(Phase2Attr.AUTH_ALG, _V1_AUTH[integ])] if integ else []),
                *([AttributeV1(Phase2Attr.KEY_LENGTH, bits)] if bits else []),
            ]
            transforms.append(TransformV1(len(transforms) + 1, _V1_ESP[encr], tuple(attrs)))
    if not transforms:
        raise NoProposalChosen("no configured ESP proposal can be spelled in IKEv1")
    return SaV1((ProposalV1(1, ProtocolV1.ESP, spi, tuple(transforms)),))
