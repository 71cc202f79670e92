"""SK payload body protection (RFC 7296 §3.14, RFC 5282, RFC 7634)."""

from __future__ import annotations

import random

import pytest

from ikepulse.crypto.cipher import cipher_for
from ikepulse.crypto.errors import CryptoError, IntegrityError
from ikepulse.crypto.integ import integ_for
from ikepulse.crypto.sk import SkCrypter
from ikepulse.wire.enums import EncrId, IntegId

SUITES = {
    "aes128-sha256": (EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128),
    "aes192-sha1": (EncrId.AES_CBC, 192, IntegId.HMAC_SHA1_96),
    "aes256-sha384": (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_384_192),
    "aes256-sha512": (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_512_256),
    "aes128gcm16": (EncrId.AES_GCM_16, 128, None),
    "aes192gcm16": (EncrId.AES_GCM_16, 192, None),
    "aes256gcm16": (EncrId.AES_GCM_16, 256, None),
    "chacha20poly1305": (EncrId.CHACHA20_POLY1305, None, None),
}

# 28-octet IKE header + 4-octet SK header, as the wire layer would hand them over.
AAD = bytes(range(28)) + b"\x29\x00\x00\x64"


def make(name: str, seed: int = 1) -> SkCrypter:
    encr_id, bits, integ_id = SUITES[name]
    rng = random.Random(seed)
    cipher = cipher_for(encr_id, bits)
    integ = None if integ_id is None else integ_for(integ_id)
    integ_key = b"" if integ is None else rng.randbytes(integ.key_size)
    return SkCrypter(cipher, integ, rng.randbytes(cipher.key_size), integ_key)


def seal(crypter: SkCrypter, plaintext: bytes, seed: int = 2) -> bytes:
    iv = random.Random(seed).randbytes(crypter.iv_size)
    return crypter.seal(AAD, plaintext, iv)


@pytest.mark.parametrize("name", SUITES)
@pytest.mark.parametrize("length", [0, 1, 14, 15, 16, 17, 100, 1000])
def test_round_trip(name, length):
    crypter = make(name)
    plaintext = random.Random(length).randbytes(length)
    body = seal(crypter, plaintext)
    assert len(body) == crypter.sealed_length(length)
    assert crypter.open(AAD, body) == plaintext
    # The peer holds the same keys in its own object.
    assert make(name).open(AAD, body) == plaintext


@pytest.mark.parametrize("name", SUITES)
def test_sealed_length_is_deterministic(name):
    crypter = make(name)
    icv = crypter.icv_size
    for length in range(0, 40):
        expected = crypter.sealed_length(length)
        assert expected == crypter.sealed_length(length)
        encrypted = expected - crypter.iv_size - icv
        if crypter.cipher.is_aead:
            assert encrypted == length + 1  # only the Pad Length octet
        else:
            assert encrypted % 16 == 0 and length + 1 <= encrypted <= length + 16


def test_cbc_padding_layout():
    """Zero padding then the Pad Length octet, to a whole number of AES blocks."""
    crypter = make("aes128-sha256")
    iv = bytes(16)
    body = crypter.seal(AAD, b"x" * 10, iv)
    padded = crypter.cipher.decrypt(crypter.encr_key, iv, body[16:-16])
    assert padded == b"x" * 10 + bytes(5) + b"\x05"


@pytest.mark.parametrize("name", SUITES)
def test_tampering_any_byte_is_detected(name):
    crypter = make(name)
    body = seal(crypter, b"inner payloads " * 3)
    for i in range(len(AAD)):
        bad_aad = AAD[:i] + bytes([AAD[i] ^ 0x01]) + AAD[i + 1 :]
        with pytest.raises(IntegrityError):
            crypter.open(bad_aad, body)
    for i in range(len(body)):
        bad_body = body[:i] + bytes([body[i] ^ 0x80]) + body[i + 1 :]
        with pytest.raises(IntegrityError):
            crypter.open(AAD, bad_body)


@pytest.mark.parametrize("name", SUITES)
def test_truncated_or_extended_bodies(name):
    crypter = make(name)
    body = seal(crypter, b"payload")
    for cut in range(len(body)):
        with pytest.raises(IntegrityError):
            crypter.open(AAD, body[:cut])
    with pytest.raises(IntegrityError):
        crypter.open(AAD, body + b"\x00")


def test_wrong_key_fails():
    body = seal(make("aes256gcm16", seed=1), b"payload")
    with pytest.raises(IntegrityError):
        make("aes256gcm16", seed=9).open(AAD, body)


def test_bad_pad_length_is_integrity_error():
    """A correctly authenticated body whose Pad Length points before its start."""
    crypter = make("aes256gcm16")
    iv = bytes(8)
    bogus = crypter.cipher.encrypt(crypter.encr_key, iv, b"ab\xff", AAD)
    with pytest.raises(IntegrityError, match="pad length"):
        crypter.open(AAD, iv + bogus)


def test_construction_checks():
    gcm, cbc = cipher_for(EncrId.AES_GCM_16, 128), cipher_for(EncrId.AES_CBC, 128)
    sha = integ_for(IntegId.HMAC_SHA2_256_128)
    with pytest.raises(CryptoError):
        SkCrypter(gcm, sha, bytes(20), bytes(32))
    with pytest.raises(CryptoError):
        SkCrypter(cbc, None, bytes(16), b"")
    with pytest.raises(CryptoError):
        SkCrypter(cbc, sha, bytes(15), bytes(32))
    with pytest.raises(CryptoError):
        SkCrypter(cbc, sha, bytes(16), bytes(31))
    crypter = SkCrypter(cbc, sha, bytes(16), bytes(32))
    with pytest.raises(CryptoError):
        crypter.seal(AAD, b"", bytes(8))
    assert bytes(16).hex() not in repr(crypter)
