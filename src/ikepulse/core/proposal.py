"""A configured proposal and the strongSwan keywords that name its algorithms.

``CryptoProposal`` prints as a strongSwan proposal string (``aes256gcm16-prfsha256-x25519``);
``ikepulse.config.proposals`` parses such strings with the keyword tables defined here.
The tables follow strongSwan's ``proposal_keywords_static.txt`` names, limited to the
algorithms that ``ikepulse.crypto`` implements.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.enums import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId

AEAD_CIPHERS = frozenset({EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305})
"""Combined-mode encryption algorithms (RFC 5282, RFC 7634): no integrity transform."""

# keyword -> value; the first keyword listed for a value is its canonical name.
ENCR_KEYWORDS: dict[str, tuple[EncrId, int | None]] = {}
for _bits in (128, 192, 256):
    ENCR_KEYWORDS[f"aes{_bits}"] = (EncrId.AES_CBC, _bits)
    for _suffix in ("gcm16", "gcm128", "gcm"):
        ENCR_KEYWORDS[f"aes{_bits}{_suffix}"] = (EncrId.AES_GCM_16, _bits)
ENCR_KEYWORDS["aes"] = (EncrId.AES_CBC, 128)
ENCR_KEYWORDS["chacha20poly1305"] = (EncrId.CHACHA20_POLY1305, None)

INTEG_KEYWORDS: dict[str, IntegId] = {
    "sha1": IntegId.HMAC_SHA1_96,
    "sha": IntegId.HMAC_SHA1_96,
    "sha256": IntegId.HMAC_SHA2_256_128,
    "sha2_256": IntegId.HMAC_SHA2_256_128,
    "sha384": IntegId.HMAC_SHA2_384_192,
    "sha2_384": IntegId.HMAC_SHA2_384_192,
    "sha512": IntegId.HMAC_SHA2_512_256,
    "sha2_512": IntegId.HMAC_SHA2_512_256,
}
PRF_KEYWORDS: dict[str, PrfId] = {
    "prfsha1": PrfId.HMAC_SHA1,
    "prfsha256": PrfId.HMAC_SHA2_256,
    "prfsha384": PrfId.HMAC_SHA2_384,
    "prfsha512": PrfId.HMAC_SHA2_512,
}
DH_KEYWORDS: dict[str, DhId] = {
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
ESN_KEYWORDS: dict[str, EsnId] = {"esn": EsnId.ESN, "noesn": EsnId.NO_ESN}

# strongSwan adds, to an IKE proposal without a PRF, the PRF matching each integrity
# algorithm.
IMPLIED_PRF: dict[IntegId, PrfId] = {
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
}


def implied_prfs(integ: tuple[IntegId, ...]) -> tuple[PrfId, ...]:
    """The PRFs strongSwan implies for these integrity algorithms, in their order."""
    out: list[PrfId] = []
    for i in integ:
        prf = IMPLIED_PRF.get(i)
        if prf is not None and prf not in out:
            out.append(prf)
    return tuple(out)


def _canonical(table: dict) -> dict:
    names: dict = {}
    for keyword, value in table.items():
        names.setdefault(value, keyword)
    return names


_ENCR_NAME = _canonical(ENCR_KEYWORDS)
_INTEG_NAME = _canonical(INTEG_KEYWORDS)
_PRF_NAME = _canonical(PRF_KEYWORDS)
_DH_NAME = _canonical(DH_KEYWORDS)
_ESN_NAME = _canonical(ESN_KEYWORDS)


@dataclass(frozen=True, slots=True)
class CryptoProposal:
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
        return bool(self.encr) and all(e in AEAD_CIPHERS for e, _ in self.encr)

    def __str__(self) -> str:
        """The canonical strongSwan string (inverse of the parsers in ``config``).

        The PRF is left out of an IKE proposal when it is exactly the one its integrity
        algorithms imply; ``noesn`` alone is left out of an ESP proposal (the default).
        """
        tokens = [_ENCR_NAME.get((e, bits)) or _fallback(e, bits) for e, bits in self.encr]
        tokens += [_INTEG_NAME.get(i) or _fallback(i) for i in self.integ]
        if not (self.integ and self.prf == implied_prfs(self.integ)):
            tokens += [_PRF_NAME.get(f) or _fallback(f) for f in self.prf]
        tokens += [_DH_NAME.get(d) or _fallback(d) for d in self.dh]
        if self.esn not in ((), (EsnId.NO_ESN,)):
            tokens += [_ESN_NAME.get(e) or _fallback(e) for e in self.esn]
        return "-".join(tokens)


def _fallback(value: object, bits: int | None = None) -> str:
    """A readable name for an ID with no keyword (only for display)."""
    name = getattr(value, "name", str(value)).lower()
    return name if bits is None else f"{name}{bits}"
