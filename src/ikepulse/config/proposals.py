"""Proposal strings in strongSwan's syntax: ``aes256gcm16-prfsha256-x25519``.

One proposal is a dash-separated list of algorithm keywords (strongSwan's
``proposal_keywords_static.txt`` names); several of one kind may appear and keep their
order of preference. A list of proposals is comma-separated. Only algorithms that
``ikepulse.crypto`` implements are accepted; RFC 8247 (IKE) and RFC 8221 (ESP) guide
the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.enums import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId


class ProposalError(ValueError):
    """A proposal string that cannot be parsed or is not a usable proposal."""


_AEAD = frozenset({EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305})

# keyword -> value; the first keyword listed for a value is its canonical name.
_ENCR: dict[str, tuple[EncrId, int | None]] = {}
for _bits in (128, 192, 256):
    _ENCR[f"aes{_bits}"] = (EncrId.AES_CBC, _bits)
    for _suffix in ("gcm16", "gcm128", "gcm"):
        _ENCR[f"aes{_bits}{_suffix}"] = (EncrId.AES_GCM_16, _bits)
_ENCR["aes"] = (EncrId.AES_CBC, 128)
_ENCR["chacha20poly1305"] = (EncrId.CHACHA20_POLY1305, None)

_INTEG: dict[str, IntegId] = {
    "sha1": IntegId.HMAC_SHA1_96,
    "sha": IntegId.HMAC_SHA1_96,
    "sha256": IntegId.HMAC_SHA2_256_128,
    "sha2_256": IntegId.HMAC_SHA2_256_128,
    "sha384": IntegId.HMAC_SHA2_384_192,
    "sha2_384": IntegId.HMAC_SHA2_384_192,
    "sha512": IntegId.HMAC_SHA2_512_256,
    "sha2_512": IntegId.HMAC_SHA2_512_256,
}
_PRF: dict[str, PrfId] = {
    "prfsha1": PrfId.HMAC_SHA1,
    "prfsha256": PrfId.HMAC_SHA2_256,
    "prfsha384": PrfId.HMAC_SHA2_384,
    "prfsha512": PrfId.HMAC_SHA2_512,
}
_DH: dict[str, DhId] = {
    "modp2048": DhId.MODP_2048,
    "modp3072": DhId.MODP_3072,
    "modp4096": DhId.MODP_4096,
    "ecp256": DhId.ECP_256,
    "ecp384": DhId.ECP_384,
    "ecp521": DhId.ECP_521,
    "x25519": DhId.CURVE25519,
    "curve25519": DhId.CURVE25519,
    "x448": DhId.CURVE448,
    "curve448": DhId.CURVE448,
}
_ESN: dict[str, EsnId] = {"esn": EsnId.ESN, "noesn": EsnId.NO_ESN}

# strongSwan keywords we recognise but deliberately do not implement (weak or absent).
_UNSUPPORTED = frozenset(
    "null des 3des blowfish cast128 camellia camellia128 camellia192 camellia256 "
    "aes128ctr aes192ctr aes256ctr aes128ccm8 aes128ccm12 aes128ccm16 aes192ccm16 "
    "aes256ccm16 aes128gcm8 aes128gcm12 aes256gcm8 aes256gcm12 aes128gmac aes256gmac "
    "chacha20poly1305compat md5 md5_128 sha1_160 sha256_96 sha2_256_96 aesxcbc aescmac "
    "prfmd5 prfaesxcbc prfaescmac none modpnone modp768 modp1024 modp1536 modp6144 "
    "modp8192 modp1024s160 modp2048s224 modp2048s256 ecp192 ecp224 ecp224bp ecp256bp "
    "ecp384bp ecp512bp".split()
)

# strongSwan adds, to an IKE proposal without a PRF, the PRF matching each integrity
# algorithm.
_IMPLIED_PRF: dict[IntegId, PrfId] = {
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
}


def _canonical(table: dict) -> dict:
    names: dict = {}
    for keyword, value in table.items():
        names.setdefault(value, keyword)
    return names


_ENCR_NAME = _canonical(_ENCR)
_INTEG_NAME = _canonical(_INTEG)
_PRF_NAME = _canonical(_PRF)
_DH_NAME = _canonical(_DH)
_ESN_NAME = _canonical(_ESN)


@dataclass(frozen=True, slots=True)
class Proposal:
    """One configured proposal: the acceptable transforms of each type, preferred first
    (RFC 7296 §3.3). ``esn`` is empty for IKE; ESP defaults to ``(NO_ESN,)``.
    """

    protocol: ProtocolId
    encr: tuple[tuple[EncrId, int | None], ...]
    integ: tuple[IntegId, ...] = ()
    prf: tuple[PrfId, ...] = ()
    dh: tuple[DhId, ...] = ()
    esn: tuple[EsnId, ...] = ()

    @property
    def is_aead(self) -> bool:
        """True when every encryption algorithm is an AEAD (RFC 5282): no integ needed."""
        return bool(self.encr) and all(e in _AEAD for e, _ in self.encr)

    def __str__(self) -> str:
        return format_proposal(self)


def parse_ike_proposal(text: str) -> Proposal:
    """Parse one IKE proposal such as ``aes256gcm16-prfsha256-x25519``."""
    return _parse(text, ProtocolId.IKE)


def parse_esp_proposal(text: str) -> Proposal:
    """Parse one ESP proposal such as ``aes128-sha256-esn`` or ``aes256gcm16-x25519``."""
    return _parse(text, ProtocolId.ESP)


def parse_proposals(text: str, protocol: ProtocolId) -> tuple[Proposal, ...]:
    """Parse a comma-separated list; the keyword ``default`` expands to our defaults."""
    out: list[Proposal] = []
    for item in text.split(","):
        if item.strip().lower() == "default":
            out += DEFAULT_IKE_PROPOSALS if protocol == ProtocolId.IKE else DEFAULT_ESP_PROPOSALS
        else:
            out.append(_parse(item, protocol))
    return tuple(out)


def format_proposal(p: Proposal) -> str:
    """The canonical strongSwan string of ``p`` (inverse of the parsers).

    The PRF is left out of an IKE proposal when it is exactly the one its integrity
    algorithms imply; ``noesn`` alone is left out of an ESP proposal (the default).
    """
    tokens = [_ENCR_NAME.get((e, bits)) or _fallback(e, bits) for e, bits in p.encr]
    tokens += [_INTEG_NAME.get(i) or _fallback(i) for i in p.integ]
    if not (p.integ and p.prf == _implied_prfs(p.integ)):
        tokens += [_PRF_NAME.get(f) or _fallback(f) for f in p.prf]
    tokens += [_DH_NAME.get(d) or _fallback(d) for d in p.dh]
    if p.esn not in ((), (EsnId.NO_ESN,)):
        tokens += [_ESN_NAME.get(e) or _fallback(e) for e in p.esn]
    return "-".join(tokens)


def _parse(text: str, protocol: ProtocolId) -> Proposal:
    source = text.strip()
    encr: list[tuple[EncrId, int | None]] = []
    integ: list[IntegId] = []
    prf: list[PrfId] = []
    dh: list[DhId] = []
    esn: list[EsnId] = []
    if not source:
        raise ProposalError("empty proposal")
    for raw in source.split("-"):
        token = raw.strip().lower()
        if not token:
            raise ProposalError(f"empty algorithm in proposal {source!r}")
        for table, bucket in ((_ENCR, encr), (_INTEG, integ), (_PRF, prf), (_DH, dh), (_ESN, esn)):
            if token in table:
                if table[token] not in bucket:
                    bucket.append(table[token])
                break
        else:
            kind = "unsupported" if token in _UNSUPPORTED else "unknown"
            raise ProposalError(f"{kind} algorithm {raw.strip()!r} in proposal {source!r}")
    if protocol == ProtocolId.IKE and not prf:
        prf = list(_implied_prfs(tuple(integ)))
    if protocol == ProtocolId.ESP and not esn:
        esn = [EsnId.NO_ESN]
    proposal = Proposal(protocol, tuple(encr), tuple(integ), tuple(prf), tuple(dh), tuple(esn))
    _validate(proposal, source)
    return proposal


def _validate(p: Proposal, source: str) -> None:
    """The rules strongSwan applies, with messages naming the proposal."""
    kind = "IKE" if p.protocol == ProtocolId.IKE else "ESP"
    where = f"{kind} proposal {source!r}"
    if not p.encr:
        raise ProposalError(f"{where} has no encryption algorithm")
    aead = [e for e, _ in p.encr if e in _AEAD]
    if aead and len(aead) != len(p.encr):
        raise ProposalError(f"{where} mixes AEAD and non-AEAD encryption algorithms")
    if aead and p.integ:
        raise ProposalError(f"{where} combines an AEAD cipher with an integrity algorithm")
    if not aead and not p.integ:
        raise ProposalError(f"{where} needs an integrity algorithm for its non-AEAD cipher")
    if p.protocol == ProtocolId.IKE:
        if not p.prf:
            raise ProposalError(f"{where} needs a PRF (e.g. prfsha256) with an AEAD cipher")
        if not p.dh:
            raise ProposalError(f"{where} needs a key exchange method (e.g. x25519)")
        if p.esn:
            raise ProposalError(f"{where} cannot contain esn/noesn")
    elif p.prf:
        raise ProposalError(f"{where} cannot contain a PRF")


def _implied_prfs(integ: tuple[IntegId, ...]) -> tuple[PrfId, ...]:
    out: list[PrfId] = []
    for i in integ:
        prf = _IMPLIED_PRF.get(i)
        if prf is not None and prf not in out:
            out.append(prf)
    return tuple(out)


def _fallback(value: object, bits: int | None = None) -> str:
    """A readable name for an ID with no keyword (only for display)."""
    name = getattr(value, "name", str(value)).lower()
    return name if bits is None else f"{name}{bits}"


DEFAULT_IKE_PROPOSALS: tuple[Proposal, ...] = (
    parse_ike_proposal(
        "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512"
        "-x25519-ecp256-ecp384-modp3072-modp2048"
    ),
    parse_ike_proposal("aes256-aes128-sha256-sha384-sha512-x25519-ecp256-ecp384-modp3072-modp2048"),
)
"""RFC 8247 §2-3: AEADs first, AES-CBC with HMAC-SHA2 as fallback; no SHA-1, no MODP
below 2048 bits."""

DEFAULT_ESP_PROPOSALS: tuple[Proposal, ...] = (
    parse_esp_proposal("aes256gcm16-aes128gcm16-chacha20poly1305"),
    parse_esp_proposal("aes256-aes128-sha256-sha384-sha512"),
)
"""RFC 8221 §5-6: AES-GCM (and ChaCha20-Poly1305), else AES-CBC with HMAC-SHA2; no PFS
group by default (a CREATE_CHILD_SA adds one only when configured)."""
