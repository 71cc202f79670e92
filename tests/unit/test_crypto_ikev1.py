"""IKEv1 keying (crypto/ikev1.py) and SIG payloads (crypto/ikev1_sig.py).

Published vectors: NIST CAVP SP 800-135 IKEv1 KDF sample (signature authentication,
SHA-1: SKEYID, SKEYID_d/a/e) and NIST SP 800-38A F.2.1 (AES-128-CBC). The rest are
properties that fail when a formula's order, padding or chaining is wrong, plus a few
formulas written out with hashlib/hmac as an independent reading of RFC 2409.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ikepulse.crypto.algid import SignatureError
from ikepulse.crypto.errors import IntegrityError, UnsupportedTransform
from ikepulse.crypto.ikev1 import (
    LengthError,
    cbc_for,
    derive_phase1,
    exchange_iv,
    expand_key,
    hash_v1,
    initial_iv,
    keymat_v1,
    natd_hash,
    next_iv,
    phase1_auth_prf,
    phase1_hash,
    prf_v1,
    quick_hash1,
    quick_hash2,
    quick_hash3,
    skeyid_psk,
    skeyid_signature,
)
from ikepulse.crypto.ikev1_sig import v1_sign, v1_verify
from ikepulse.wire.isakmp_enums import AuthMethodV1, EncrV1, HashV1

SHA1 = prf_v1(HashV1.SHA1)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def hmac_sha1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


# --- NIST CAVP SP 800-135 IKEv1 (DSA / signature SKEYID, SHA-1) -----------------------
NIST_CKY_I = h("382e5c8b0a3fa307")
NIST_CKY_R = h("ba4b7616700a2413")
NIST_NI = h("ced5635da6796075")
NIST_NR = h("6244b427712fb776")
NIST_GXY = h(
    "2a2e0bbe8da3657a83f3d35826e49e2d38e557e912a1b9e6c30c63577b3eab71"
    "5466202862027f2c26f3090743555579611771db0b92bef93834432a3a7762fc"
    "8a0f4889fd281d6082770d10a40d7bad61e832f041e620d6787e7f62ab2861dd"
    "fbe272e0d9d3cdec5f1bbf750e24b8b32d6d714968ad69ce5086c32ad2742ebc"
)
NIST_SKEYID = h("dc37ac99de6dcfbd1ee74af7fb36f9b4b0a7829d")
NIST_SKEYID_D = h("486293ed547adb562cefdaf43d3d8457b196f2b6")
NIST_SKEYID_A = h("f4053b5ca07e59bb41b8f401037ca90b72b3917e")
NIST_SKEYID_E = h("49a1d53a80fb77e663552964fbbcb45092021473")


def test_nist_ikev1_signature_skeyid_and_children():
    skeyid = skeyid_signature(SHA1, NIST_NI, NIST_NR, NIST_GXY)
    assert skeyid == NIST_SKEYID
    keys = derive_phase1(SHA1, skeyid, NIST_GXY, NIST_CKY_I, NIST_CKY_R, 16)
    assert (keys.skeyid_d, keys.skeyid_a, keys.skeyid_e) == (
        NIST_SKEYID_D,
        NIST_SKEYID_A,
        NIST_SKEYID_E,
    )
    assert keys.enc_key == NIST_SKEYID_E[:16]  # AES-128: SKEYID_e is long enough


def test_appendix_b_expansion_from_the_nist_skeyid_e():
    """AES-256 from SHA-1: Ka = K1 | K2 cut to 32, K1 = prf(SKEYID_e, 0x00),
    K2 = prf(SKEYID_e, K1); it does not start with SKEYID_e itself."""
    k1 = hmac_sha1(NIST_SKEYID_E, b"\x00")
    k2 = hmac_sha1(NIST_SKEYID_E, k1)
    keys = derive_phase1(SHA1, NIST_SKEYID, NIST_GXY, NIST_CKY_I, NIST_CKY_R, 32)
    assert keys.enc_key == (k1 + k2)[:32]
    assert not keys.enc_key.startswith(NIST_SKEYID_E[:4])


@pytest.mark.parametrize("size", [1, 16, 20])
def test_key_is_a_prefix_of_skeyid_e_when_long_enough(size):
    assert expand_key(SHA1, NIST_SKEYID_E, size) == NIST_SKEYID_E[:size]


@pytest.mark.parametrize("size", [0, -1, 255 * 20 + 1])
def test_expansion_refuses_sizes_out_of_range(size):
    with pytest.raises(LengthError):
        expand_key(SHA1, NIST_SKEYID_E, size)


def test_skeyid_psk_keys_the_prf_with_the_psk_over_both_nonces():
    assert skeyid_psk(SHA1, b"secret", NIST_NI, NIST_NR) == hmac_sha1(b"secret", NIST_NI + NIST_NR)
    assert skeyid_psk(SHA1, b"secret", NIST_NR, NIST_NI) != skeyid_psk(
        SHA1, b"secret", NIST_NI, NIST_NR
    )
    with pytest.raises(LengthError):
        skeyid_psk(SHA1, b"", NIST_NI, NIST_NR)


@pytest.mark.parametrize("cookies", [(b"\x01" * 7, NIST_CKY_R), (NIST_CKY_I, b"\x01" * 9)])
def test_derive_phase1_refuses_cookies_that_are_not_8_octets(cookies):
    with pytest.raises(LengthError):
        derive_phase1(SHA1, NIST_SKEYID, NIST_GXY, *cookies, 16)


@pytest.mark.parametrize("hash_id", [HashV1.MD5, HashV1.TIGER, 99])
def test_md5_tiger_and_unknown_hashes_are_unsupported(hash_id):
    with pytest.raises(UnsupportedTransform):
        prf_v1(hash_id)
    with pytest.raises(UnsupportedTransform):
        hash_v1(hash_id, b"x")


@pytest.mark.parametrize(
    ("hash_id", "size"),
    [(HashV1.SHA1, 20), (HashV1.SHA2_256, 32), (HashV1.SHA2_384, 48), (HashV1.SHA2_512, 64)],
)
def test_prf_and_hash_sizes(hash_id, size):
    assert prf_v1(hash_id).output_size == size
    assert len(hash_v1(hash_id, b"")) == size


def test_ecdsa_hashes_use_the_curves_sha2_whatever_the_proposal():
    assert phase1_auth_prf(HashV1.SHA1, AuthMethodV1.ECDSA_384).output_size == 48
    assert phase1_auth_prf(HashV1.SHA1, AuthMethodV1.ECDSA_521).output_size == 64
    assert phase1_auth_prf(HashV1.SHA2_256, AuthMethodV1.PSK).output_size == 32
    assert phase1_auth_prf(HashV1.SHA1, AuthMethodV1.RSA_SIG).output_size == 20


# --- HASH_I / HASH_R (§5) ---------------------------------------------------------------
HASH_ARGS = {
    "g_xi": b"\x11" * 32,
    "g_xr": b"\x22" * 32,
    "cky_i": b"\x33" * 8,
    "cky_r": b"\x44" * 8,
    "sai_b": b"sa body",
    "id_b": b"id body",
}


def test_hash_i_is_prf_over_the_initiator_ordering():
    a = HASH_ARGS
    expected = hmac_sha1(
        b"K", a["g_xi"] + a["g_xr"] + a["cky_i"] + a["cky_r"] + a["sai_b"] + a["id_b"]
    )
    assert phase1_hash(SHA1, b"K", initiator=True, **a) == expected


def test_hash_r_swaps_both_public_values_and_both_cookies():
    a = HASH_ARGS
    swapped = dict(a, g_xi=a["g_xr"], g_xr=a["g_xi"], cky_i=a["cky_r"], cky_r=a["cky_i"])
    hash_r = phase1_hash(SHA1, b"K", initiator=False, **a)
    assert hash_r == phase1_hash(SHA1, b"K", initiator=True, **swapped)
    assert hash_r != phase1_hash(SHA1, b"K", initiator=True, **a)


def test_phase1_hash_refuses_short_cookies():
    with pytest.raises(LengthError):
        phase1_hash(SHA1, b"K", initiator=True, **dict(HASH_ARGS, cky_r=b"\x00" * 4))


# --- IVs and CBC (§5.3, App. B) ----------------------------------------------------------


def test_initial_iv_is_the_hash_of_both_public_values_cut_to_the_block():
    iv = initial_iv(HashV1.SHA1, b"\x01" * 8, b"\x02" * 8, 16)
    assert iv == hashlib.sha1(b"\x01" * 8 + b"\x02" * 8).digest()[:16]
    assert initial_iv(HashV1.SHA1, b"\x02" * 8, b"\x01" * 8, 16) != iv
    with pytest.raises(LengthError):
        initial_iv(HashV1.SHA1, b"\x01", b"\x02", 32)  # SHA-1 has only 20 octets


def test_exchange_iv_hashes_the_last_phase1_block_and_the_message_id():
    last = bytes(range(16))
    iv = exchange_iv(HashV1.SHA2_256, last, 0x01020304, 16)
    assert iv == hashlib.sha256(last + b"\x01\x02\x03\x04").digest()[:16]
    assert exchange_iv(HashV1.SHA2_256, last, 0x04030201, 16) != iv


@pytest.mark.parametrize(("last", "mid"), [(b"\x00" * 15, 1), (b"\x00" * 16, 1 << 32)])
def test_exchange_iv_refuses_bad_sizes(last, mid):
    with pytest.raises(LengthError):
        exchange_iv(HashV1.SHA1, last, mid, 16)


def test_aes_cbc_known_answer_sp800_38a():
    """SP 800-38A F.2.1 first block; the aligned plaintext gains a zero block."""
    aes = cbc_for(EncrV1.AES_CBC, 128)
    key = h("2b7e151628aed2a6abf7158809cf4f3c")
    iv = h("000102030405060708090a0b0c0d0e0f")
    out = aes.encrypt(key, iv, h("6bc1bee22e409f96e93d7e117393172a"))
    assert out[:16] == h("7649abac8119b246cee98e9b12e9197d")
    assert len(out) == 32


CIPHERS = [
    (EncrV1.AES_CBC, 128),
    (EncrV1.AES_CBC, 192),
    (EncrV1.AES_CBC, 256),
    (EncrV1.TRIPLE_DES, None),
]


@pytest.mark.parametrize(("encr", "bits"), CIPHERS)
@pytest.mark.parametrize("length", [0, 1, 7, 8, 15, 16, 17, 33])
def test_cbc_round_trip_pads_with_zeros_like_strongswan(encr, bits, length):
    cipher = cbc_for(encr, bits)
    key, iv = bytes(range(cipher.key_size)), b"\x5a" * cipher.block_size
    plaintext = bytes(range(1, length + 1))
    ciphertext = cipher.encrypt(key, iv, plaintext)
    pad = cipher.block_size - length % cipher.block_size
    assert len(ciphertext) == length + pad
    assert cipher.decrypt(key, iv, ciphertext) == plaintext + bytes(pad)


def test_next_iv_chains_like_one_long_cbc_run():
    aes = cbc_for(EncrV1.AES_CBC, 256)
    key, iv = b"\x07" * 32, b"\x09" * 16
    first = aes.encrypt(key, iv, b"the first message")  # two blocks
    second = aes.encrypt(key, next_iv(first, 16), b"second")
    assert next_iv(first, 16) == first[-16:]
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    joined = b"the first message" + bytes(15) + b"second" + bytes(10)
    assert encryptor.update(joined) + encryptor.finalize() == first + second


@pytest.mark.parametrize("ciphertext", [b"", b"\x00" * 15, b"\x00" * 17])
def test_decrypt_refuses_bodies_that_are_not_whole_blocks(ciphertext):
    with pytest.raises(IntegrityError):
        cbc_for(EncrV1.AES_CBC, 128).decrypt(b"\x00" * 16, b"\x00" * 16, ciphertext)
    with pytest.raises(LengthError):
        next_iv(ciphertext, 16)


@pytest.mark.parametrize(("key", "iv"), [(b"\x00" * 15, b"\x00" * 16), (b"\x00" * 16, b"\x00" * 8)])
def test_cbc_refuses_wrong_key_or_iv_sizes(key, iv):
    aes = cbc_for(EncrV1.AES_CBC, 128)
    with pytest.raises(LengthError):
        aes.encrypt(key, iv, b"x")
    with pytest.raises(LengthError):
        aes.decrypt(key, iv, b"\x00" * 16)


@pytest.mark.parametrize(
    ("encr", "bits"),
    [
        (EncrV1.AES_CBC, None),
        (EncrV1.AES_CBC, 64),
        (EncrV1.TRIPLE_DES, 128),
        (EncrV1.DES, None),
        (99, 128),
    ],  # fmt: skip
)
def test_cbc_for_refuses_what_it_does_not_provide(encr, bits):
    with pytest.raises(UnsupportedTransform):
        cbc_for(encr, bits)


# --- Quick Mode hashes and KEYMAT (§5.5, §5.7) -----------------------------------------
NI, NR = b"\xaa" * 16, b"\xbb" * 16


def test_quick_mode_hashes():
    mid = 0x0A0B0C0D
    mid_b = mid.to_bytes(4, "big")
    assert quick_hash1(SHA1, b"A", mid, b"rest") == hmac_sha1(b"A", mid_b + b"rest")
    assert quick_hash2(SHA1, b"A", mid, NI, b"rest") == hmac_sha1(b"A", mid_b + NI + b"rest")
    assert quick_hash3(SHA1, b"A", mid, NI, NR) == hmac_sha1(b"A", b"\x00" + mid_b + NI + NR)
    assert quick_hash1(SHA1, b"A", 1, b"") != quick_hash1(SHA1, b"A", 1 << 8, b"")


@pytest.mark.parametrize("mid", [-1, 1 << 32])
def test_quick_mode_hashes_refuse_message_ids_beyond_32_bits(mid):
    with pytest.raises(LengthError):
        quick_hash1(SHA1, b"A", mid, b"")
    with pytest.raises(LengthError):
        quick_hash3(SHA1, b"A", mid, NI, NR)


def test_keymat_blocks_chain_the_previous_block_before_the_seed():
    seed = b"\x03" + b"\xc0\x00\x00\x01" + NI + NR
    k1 = hmac_sha1(b"D", seed)
    k2 = hmac_sha1(b"D", k1 + seed)
    assert keymat_v1(SHA1, b"D", 3, b"\xc0\x00\x00\x01", NI, NR, 36) == (k1 + k2)[:36]


def test_keymat_is_a_prefix_of_a_longer_keymat_and_pfs_changes_it():
    short = keymat_v1(SHA1, b"D", 3, b"\x00\x00\x10\x00", NI, NR, 20)
    long = keymat_v1(SHA1, b"D", 3, b"\x00\x00\x10\x00", NI, NR, 72)
    assert long.startswith(short) and len(long) == 72
    assert keymat_v1(SHA1, b"D", 3, b"\x00\x00\x10\x00", NI, NR, 20, g_qm=b"\x05" * 32) != short
    assert keymat_v1(SHA1, b"D", 2, b"\x00\x00\x10\x00", NI, NR, 20) != short


@pytest.mark.parametrize(
    ("protocol", "spi", "length"),
    [(3, b"\x00" * 3, 16), (256, b"\x00" * 4, 16), (3, b"\x00" * 4, 0)],
)
def test_keymat_refuses_bad_sizes(protocol, spi, length):
    with pytest.raises(LengthError):
        keymat_v1(SHA1, b"D", protocol, spi, NI, NR, length)


# --- NAT-D (RFC 3947 §3.2) ------------------------------------------------------------
CKY_I, CKY_R = b"\x01" * 8, b"\x02" * 8


def test_natd_ipv4_and_ipv6_hash_the_packed_address_and_port():
    v4 = natd_hash(HashV1.SHA1, CKY_I, CKY_R, "192.0.2.1", 500)
    assert v4 == hashlib.sha1(CKY_I + CKY_R + bytes([192, 0, 2, 1]) + b"\x01\xf4").digest()
    v6 = natd_hash(HashV1.SHA2_256, CKY_I, CKY_R, "2001:db8::1", 4500)
    packed = bytes.fromhex("20010db8000000000000000000000001")
    assert v6 == hashlib.sha256(CKY_I + CKY_R + packed + b"\x11\x94").digest()
    assert natd_hash(HashV1.SHA1, CKY_I, CKY_R, "192.0.2.1", 4500) != v4
    assert natd_hash(HashV1.SHA1, CKY_R, CKY_I, "192.0.2.1", 500) != v4


@pytest.mark.parametrize(
    ("cky_i", "address", "port"),
    [(CKY_I, "192.0.2.300", 500), (CKY_I, 3221225985, 500), (CKY_I, "192.0.2.1", 65536),
     (b"\x01" * 4, "192.0.2.1", 500)],
)  # fmt: skip
def test_natd_refuses_bad_input(cky_i, address, port):
    with pytest.raises(LengthError):
        natd_hash(HashV1.SHA1, cky_i, CKY_R, address, port)


# --- SIG payloads ---------------------------------------------------------------------
ECDSA = [
    (AuthMethodV1.ECDSA_256, ec.SECP256R1(), 32),
    (AuthMethodV1.ECDSA_384, ec.SECP384R1(), 48),
    (AuthMethodV1.ECDSA_521, ec.SECP521R1(), 66),
]


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


@pytest.mark.parametrize(("method", "curve", "size"), ECDSA)
def test_ecdsa_sign_verify_round_trip_with_fixed_size_r_s(method, curve, size):
    key = ec.generate_private_key(curve)
    hash_value = phase1_hash(
        phase1_auth_prf(HashV1.SHA1, method), b"K", initiator=True, **HASH_ARGS
    )
    signature = v1_sign(key, method, hash_value)
    assert len(signature) == 2 * size
    v1_verify(key.public_key(), method, signature, hash_value)
    tampered = bytes([hash_value[0] ^ 1]) + hash_value[1:]
    with pytest.raises(SignatureError):
        v1_verify(key.public_key(), method, signature, tampered)
    with pytest.raises(SignatureError):
        v1_verify(key.public_key(), method, signature[:-1], hash_value)


def test_ecdsa_refuses_a_key_on_another_curve():
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(SignatureError):
        v1_sign(key, AuthMethodV1.ECDSA_256, b"\x00" * 32)
    with pytest.raises(SignatureError):
        v1_verify(key.public_key(), AuthMethodV1.ECDSA_256, b"\x00" * 64, b"\x00" * 32)


def test_rsa_signs_the_raw_hash_without_digestinfo(rsa_key):
    hash_value = b"\x42" * 20
    signature = v1_sign(rsa_key, AuthMethodV1.RSA_SIG, hash_value)
    recovered = rsa_key.public_key().recover_data_from_signature(
        signature, padding.PKCS1v15(), utils.NoDigestInfo()
    )
    assert recovered == hash_value
    v1_verify(rsa_key.public_key(), AuthMethodV1.RSA_SIG, signature, hash_value)
    with pytest.raises(SignatureError):
        v1_verify(rsa_key.public_key(), AuthMethodV1.RSA_SIG, signature, b"\x43" + hash_value[1:])


def test_rsa_refuses_a_digestinfo_signature_and_wrong_sizes(rsa_key):
    hash_value = b"\x42" * 20
    with_info = rsa_key.sign(hash_value, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
    with pytest.raises(SignatureError):
        v1_verify(rsa_key.public_key(), AuthMethodV1.RSA_SIG, with_info, hash_value)
    with pytest.raises(SignatureError):
        v1_verify(rsa_key.public_key(), AuthMethodV1.RSA_SIG, b"\x01" * 255, hash_value)
    with pytest.raises(SignatureError):
        v1_sign(rsa_key, AuthMethodV1.RSA_SIG, b"\x00" * 250)


def test_rsa_refuses_short_keys():
    key = rsa.generate_private_key(65537, 1024)
    signature = v1_sign(key, AuthMethodV1.RSA_SIG, b"\x42" * 20)
    with pytest.raises(SignatureError):
        v1_verify(key.public_key(), AuthMethodV1.RSA_SIG, signature, b"\x42" * 20)


def test_key_type_and_method_must_agree(rsa_key):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError):
        v1_sign(ec_key, AuthMethodV1.RSA_SIG, b"\x00" * 20)
    with pytest.raises(SignatureError):
        v1_sign(rsa_key, AuthMethodV1.ECDSA_256, b"\x00" * 32)
    for method in (AuthMethodV1.DSS, AuthMethodV1.PSK):
        with pytest.raises(UnsupportedTransform):
            v1_sign(rsa_key, method, b"\x00" * 20)
        with pytest.raises(UnsupportedTransform):
            v1_verify(rsa_key.public_key(), method, b"\x00" * 256, b"\x00" * 20)
