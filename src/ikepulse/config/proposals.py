"""Proposal strings in strongSwan's syntax: ``aes256gcm16-prfsha256-x25519``.

One proposal is a dash-separated list of algorithm keywords (the tables in
``ikepulse.core.proposal``); several of one kind may appear and keep their order of
preference. A list of proposals is comma-separated. Only algorithms that
``ikepulse.crypto`` implements are accepted; RFC 8247 (IKE) and RFC 8221 (ESP) guide
the defaults.
"""

from __future__ import annotations

from ..core.proposal import (
    AEAD_CIPHERS,
    DH_KEYWORDS,
    ENCR_KEYWORDS,
    ESN_KEYWORDS,
    INTEG_KEYWORDS,
    PRF_KEYWORDS,
    CryptoProposal,
    implied_prfs,
)
from ..wire.enums import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId


class ProposalError(ValueError):
    """A proposal string that cannot be parsed or is not a usable proposal."""


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


def parse_ike_proposal(text: str) -> CryptoProposal:
    """Parse one IKE proposal such as ``aes256gcm16-prfsha256-x25519``."""
    return _parse(text, ProtocolId.IKE)


def parse_esp_proposal(text: str) -> CryptoProposal:
    """Parse one ESP proposal such as ``aes128-sha256-esn`` or ``aes256gcm16-x25519``."""
    return _parse(text, ProtocolId.ESP)


def parse_proposals(text: str, protocol: ProtocolId) -> tuple[CryptoProposal, ...]:
    """Parse a comma-separated list; the keyword ``default`` expands to our defaults."""
    out: list[CryptoProposal] = []
    for item in text.split(","):
        if item.strip().lower() == "default":
            out += DEFAULT_IKE_PROPOSALS if protocol == ProtocolId.IKE else DEFAULT_ESP_PROPOSALS
        else:
            out.append(_parse(item, protocol))
    return tuple(out)


def _parse(text: str, protocol: ProtocolId) -> CryptoProposal:
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
        for table, bucket in (
            (ENCR_KEYWORDS, encr),
            (INTEG_KEYWORDS, integ),
            (PRF_KEYWORDS, prf),
            (DH_KEYWORDS, dh),
            (ESN_KEYWORDS, esn),
        ):
            if token in table:
                if table[token] not in bucket:
                    bucket.append(table[token])
                break
        else:
            kind = "unsupported" if token in _UNSUPPORTED else "unknown"
            raise ProposalError(f"{kind} algorithm {raw.strip()!r} in proposal {source!r}")
    if protocol == ProtocolId.IKE and not prf:
        prf = list(implied_prfs(tuple(integ)))
    if protocol == ProtocolId.ESP and not esn:
        esn = [EsnId.NO_ESN]
    proposal = CryptoProposal(
        protocol, tuple(encr), tuple(integ), tuple(prf), tuple(dh), tuple(esn)
    )
    _validate(proposal, source)
    return proposal


def _validate(p: CryptoProposal, source: str) -> None:
    """The rules strongSwan applies, with messages naming the proposal."""
    kind = "IKE" if p.protocol == ProtocolId.IKE else "ESP"
    where = f"{kind} proposal {source!r}"
    if not p.encr:
        raise ProposalError(f"{where} has no encryption algorithm")
    aead = [e for e, _ in p.encr if e in AEAD_CIPHERS]
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


DEFAULT_IKE_PROPOSALS: tuple[CryptoProposal, ...] = (
    parse_ike_proposal(
        "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512"
        "-x25519-ecp256-ecp384-modp3072-modp2048"
    ),
    parse_ike_proposal("aes256-aes128-sha256-sha384-sha512-x25519-ecp256-ecp384-modp3072-modp2048"),
)
"""RFC 8247 §2-3: AEADs first, AES-CBC with HMAC-SHA2 as fallback; no SHA-1, no MODP
below 2048 bits."""

DEFAULT_ESP_PROPOSALS: tuple[CryptoProposal, ...] = (
    parse_esp_proposal("aes256gcm16-aes128gcm16-chacha20poly1305"),
    parse_esp_proposal("aes256-aes128-sha256-sha384-sha512"),
)
"""RFC 8221 §5-6: AES-GCM (and ChaCha20-Poly1305), else AES-CBC with HMAC-SHA2; no PFS
group by default (a CREATE_CHILD_SA adds one only when configured)."""
