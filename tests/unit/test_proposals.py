"""strongSwan-style proposal strings: parse, validate, format."""

from __future__ import annotations

import pytest

from ikepulse.config.proposals import (
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    ProposalError,
    parse_esp_proposal,
    parse_ike_proposal,
    parse_proposals,
)
from ikepulse.core.proposal import CryptoProposal
from ikepulse.crypto.cipher import cipher_for
from ikepulse.crypto.dh import SUPPORTED_GROUPS
from ikepulse.crypto.integ import integ_for
from ikepulse.crypto.prf import prf_for
from ikepulse.wire.enums import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId

IKE_CANONICAL = [
    "aes256gcm16-prfsha256-x25519",
    "aes128-sha256-modp2048",
    "aes256-sha384-ecp384",
    "chacha20poly1305-prfsha256-x25519",
    "aes128-aes256-sha256-modp2048-ecp256",
    "aes192-sha1-modp3072",
    "aes128gcm16-aes256gcm16-prfsha384-prfsha512-ecp521-x448-modp4096",
    "aes256-sha256-prfsha384-ecp256",
    "aes256-sha512-sha256-ecp384-x25519",
]
ESP_CANONICAL = [
    "aes256gcm16",
    "aes128-sha256",
    "aes256gcm16-x25519",
    "aes128-sha256-esn",
    "aes256-sha512-esn-noesn",
    "chacha20poly1305-modp2048",
    "aes192gcm16-aes128gcm16",
]


@pytest.mark.parametrize("text", IKE_CANONICAL)
def test_ike_round_trip(text):
    p = parse_ike_proposal(text)
    assert p.protocol == ProtocolId.IKE
    assert p.esn == ()
    assert str(p) == text
    assert parse_ike_proposal(str(p)) == p


@pytest.mark.parametrize("text", ESP_CANONICAL)
def test_esp_round_trip(text):
    p = parse_esp_proposal(text)
    assert p.protocol == ProtocolId.ESP
    assert p.prf == ()
    assert str(p) == text
    assert parse_esp_proposal(str(p)) == p


def test_ike_fields():
    p = parse_ike_proposal("aes256gcm16-prfsha256-x25519")
    assert p == CryptoProposal(
        ProtocolId.IKE, ((EncrId.AES_GCM_16, 256),), (), (PrfId.HMAC_SHA2_256,), (DhId.CURVE25519,)
    )
    assert p.is_aead

    p = parse_ike_proposal("aes128-aes256-sha256-modp2048-ecp256")
    assert p.encr == ((EncrId.AES_CBC, 128), (EncrId.AES_CBC, 256))
    assert p.integ == (IntegId.HMAC_SHA2_256_128,)
    assert p.prf == (PrfId.HMAC_SHA2_256,)  # implied by sha256
    assert p.dh == (DhId.MODP_2048, DhId.ECP_256)
    assert not p.is_aead

    chacha = parse_ike_proposal("chacha20poly1305-prfsha512-x448")
    assert chacha.encr == ((EncrId.CHACHA20_POLY1305, None),)


def test_implied_prf_follows_each_integ_in_order():
    p = parse_ike_proposal("aes256-sha384-sha1-sha384-ecp384")
    assert p.integ == (IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA1_96)
    assert p.prf == (PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA1)
    assert str(p) == "aes256-sha384-sha1-ecp384"


def test_explicit_prf_is_kept_and_printed():
    p = parse_ike_proposal("aes128-sha256-prfsha512-modp2048")
    assert p.prf == (PrfId.HMAC_SHA2_512,)
    assert str(p) == "aes128-sha256-prfsha512-modp2048"
    # Explicitly naming the implied PRF prints canonically without it.
    assert str(parse_ike_proposal("aes128-sha256-prfsha256-modp2048")) == ("aes128-sha256-modp2048")


def test_esp_fields_and_esn_default():
    assert parse_esp_proposal("aes256gcm16").esn == (EsnId.NO_ESN,)
    assert parse_esp_proposal("aes128-sha256-esn").esn == (EsnId.ESN,)
    assert parse_esp_proposal("aes128-sha256-esn-noesn").esn == (EsnId.ESN, EsnId.NO_ESN)
    assert str(parse_esp_proposal("aes128-sha256-noesn")) == "aes128-sha256"
    p = parse_esp_proposal("aes256gcm16-x25519")
    assert p.dh == (DhId.CURVE25519,) and p.integ == () and p.prf == ()


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("aes128gcm128-prfsha256-x25519", "aes128gcm16-prfsha256-x25519"),
        ("aes256gcm-prfsha256-curve25519", "aes256gcm16-prfsha256-x25519"),
        ("aes192gcm128-prfsha256-curve448", "aes192gcm16-prfsha256-x448"),
        ("aes-sha-modp2048", "aes128-sha1-modp2048"),
        ("aes256-sha2_256-ecp256", "aes256-sha256-ecp256"),
        ("AES256-SHA256-ECP256", "aes256-sha256-ecp256"),
        (" aes256 - sha256 - ecp256 ", "aes256-sha256-ecp256"),
        ("aes256-aes256-sha256-sha256-ecp256-ecp256", "aes256-sha256-ecp256"),
    ],
)
def test_aliases(alias, canonical):
    assert str(parse_ike_proposal(alias)) == canonical


@pytest.mark.parametrize(
    ("parse", "text", "token"),
    [
        (parse_ike_proposal, "aes257-sha256-modp2048", "aes257"),
        (parse_ike_proposal, "aes128-sha256-modp2049", "modp2049"),
        (parse_esp_proposal, "aes128-sha999", "sha999"),
        (parse_ike_proposal, "aes128-sha256-prfsha1024-ecp256", "prfsha1024"),
    ],
)
def test_unknown_token_is_named(parse, text, token):
    with pytest.raises(ProposalError) as info:
        parse(text)
    assert str(info.value) == f"unknown algorithm {token!r} in proposal {text!r}"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("token", ["3des", "md5", "modp1024", "aes128gcm8", "ecp256bp"])
def test_known_but_unsupported_token(token):
    text = f"aes128-sha256-modp2048-{token}"
    with pytest.raises(ProposalError, match=f"unsupported algorithm '{token}' in proposal"):
        parse_ike_proposal(text)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_ike_proposal, "", "empty proposal"),
        (parse_ike_proposal, "aes128--sha256-modp2048", "empty algorithm"),
        (parse_ike_proposal, "sha256-modp2048", "no encryption algorithm"),
        (parse_ike_proposal, "aes256gcm16-x25519", "needs a PRF"),
        (parse_ike_proposal, "aes256-prfsha256-x25519", "needs an integrity algorithm"),
        (parse_ike_proposal, "aes256gcm16-sha256-x25519", "AEAD cipher with an integrity"),
        (parse_ike_proposal, "aes256gcm16-aes256-sha256-x25519", "mixes AEAD and non-AEAD"),
        (parse_ike_proposal, "aes256-sha256", "needs a key exchange method"),
        (parse_ike_proposal, "aes256-sha256-ecp256-esn", "cannot contain esn"),
        (parse_esp_proposal, "aes256gcm16-prfsha256", "cannot contain a PRF"),
        (parse_esp_proposal, "aes256", "needs an integrity algorithm"),
        (parse_esp_proposal, "aes128gcm16-sha256", "AEAD cipher with an integrity"),
    ],
)
def test_invalid_proposals(parse, text, message):
    with pytest.raises(ProposalError, match=message) as info:
        parse(text)
    if text:
        assert repr(text.strip()) in str(info.value)


def test_proposal_lists_and_default():
    ike = parse_proposals("aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048", ProtocolId.IKE)
    assert [str(p) for p in ike] == ["aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"]
    assert parse_proposals("default", ProtocolId.IKE) == DEFAULT_IKE_PROPOSALS
    assert parse_proposals("aes128-sha256,default", ProtocolId.ESP) == (
        parse_esp_proposal("aes128-sha256"),
        *DEFAULT_ESP_PROPOSALS,
    )


def test_defaults_are_valid_and_implemented():
    """Every default round-trips and every algorithm in it exists in ikepulse.crypto."""
    assert DEFAULT_IKE_PROPOSALS and DEFAULT_ESP_PROPOSALS
    for p in DEFAULT_IKE_PROPOSALS:
        assert p.protocol == ProtocolId.IKE
        assert parse_ike_proposal(str(p)) == p
        assert p.dh and p.prf
    for p in DEFAULT_ESP_PROPOSALS:
        assert p.protocol == ProtocolId.ESP
        assert parse_esp_proposal(str(p)) == p
        assert p.esn == (EsnId.NO_ESN,)
    for p in DEFAULT_IKE_PROPOSALS + DEFAULT_ESP_PROPOSALS:
        for encr_id, bits in p.encr:
            cipher_for(encr_id, bits)
        for integ_id in p.integ:
            integ_for(integ_id)
        for prf_id in p.prf:
            prf_for(prf_id)
        assert set(p.dh) <= set(SUPPORTED_GROUPS)
        # RFC 8247 / RFC 8221: nothing weaker than SHA-256 and 2048-bit MODP by default.
        assert IntegId.HMAC_SHA1_96 not in p.integ and PrfId.HMAC_SHA1 not in p.prf
    first = DEFAULT_IKE_PROPOSALS[0]
    assert first.is_aead and first.dh[0] == DhId.CURVE25519
    assert DhId.MODP_2048 in first.dh and PrfId.HMAC_SHA2_256 in first.prf
    assert any(not p.is_aead for p in DEFAULT_IKE_PROPOSALS)
    assert DEFAULT_ESP_PROPOSALS[0].encr[0] == (EncrId.AES_GCM_16, 256)
