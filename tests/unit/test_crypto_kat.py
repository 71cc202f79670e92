"""Known-answer tests for ikepulse.crypto against published vectors.

Vectors: RFC 4231 §4 (HMAC-SHA-2), RFC 5903 §8 (ECP groups 19-21), RFC 7748 §6
(X25519, X448), RFC 8439 §2.8.2 (ChaCha20-Poly1305 AEAD). Key derivation is checked
against prf+ written out by hand with cryptography's HMAC (RFC 7296 §2.13, §2.14, §2.17).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, hmac

from ikepulse.crypto.auth import psk_auth, signed_octets
from ikepulse.crypto.cipher import cipher_for
from ikepulse.crypto.dh import key_exchange_from_private
from ikepulse.crypto.errors import CryptoError, IntegrityError, UnsupportedTransform
from ikepulse.crypto.integ import integ_for
from ikepulse.crypto.keys import (
    child_keymat,
    derive_ike_keys,
    rekey_skeyseed,
    skeyseed,
    split_child_keys,
)
from ikepulse.crypto.prf import prf_for, prf_plus
from ikepulse.wire.enums import DhId, EncrId, IntegId, PrfId


def h(text: str) -> bytes:
    """Hex as the RFCs print it: any whitespace, any case."""
    return bytes.fromhex("".join(text.split()))


def hmac_ref(algorithm: hashes.HashAlgorithm, key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, algorithm)
    mac.update(data)
    return mac.finalize()


# --- RFC 4231 §4: HMAC-SHA-256/384/512 ------------------------------------------------

RFC4231 = {
    # case: (key, data, {prf: expected})
    1: (
        b"\x0b" * 20,
        b"Hi There",
        {
            PrfId.HMAC_SHA2_256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            PrfId.HMAC_SHA2_384: "afd03944d84895626b0825f4ab46907f"
            "15f9dadbe4101ec682aa034c7cebc59c"
            "faea9ea9076ede7f4af152e8b2fa9cb6",
            PrfId.HMAC_SHA2_512: "87aa7cdea5ef619d4ff0b4241a1d6cb0"
            "2379f4e2ce4ec2787ad0b30545e17cde"
            "daa833b7d6b8a702038b274eaea3f4e4"
            "be9d914eeb61f1702e696c203a126854",
        },
    ),
    2: (
        b"Jefe",
        b"what do ya want for nothing?",
        {
            PrfId.HMAC_SHA2_256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            PrfId.HMAC_SHA2_384: "af45d2e376484031617f78d2b58a6b1b"
            "9c7ef464f5a01b47e42ec3736322445e"
            "8e2240ca5e69e2c78b3239ecfab21649",
            PrfId.HMAC_SHA2_512: "164b7a7bfcf819e2e395fbe73b56e0a3"
            "87bd64222e831fd610270cd7ea250554"
            "9758bf75c05a994a6d034f65f8f0e6fd"
            "caeab1a34d4a6b4b636e070a38bce737",
        },
    ),
    6: (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        {
            PrfId.HMAC_SHA2_256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            PrfId.HMAC_SHA2_384: "4ece084485813e9088d2c63a041bc5b4"
            "4f9ef1012a2b588f3cd11f05033ac4c6"
            "0c2ef6ab4030fe8296248df163f44952",
            PrfId.HMAC_SHA2_512: "80b24263c7c1a3ebb71493c1dd7be8b4"
            "9b46d1f41b4aeec1121b013783f8f352"
            "6b56d037e05f2598bd0fd2215d6a1e52"
            "95e64f73f63f0aec8b915a985d786598",
        },
    ),
}
INTEG_OF = {
    PrfId.HMAC_SHA2_256: (IntegId.HMAC_SHA2_256_128, 16),
    PrfId.HMAC_SHA2_384: (IntegId.HMAC_SHA2_384_192, 24),
    PrfId.HMAC_SHA2_512: (IntegId.HMAC_SHA2_512_256, 32),
}
RFC4231_CASES = [(case, prf_id) for case in sorted(RFC4231) for prf_id in sorted(RFC4231[case][2])]


@pytest.mark.parametrize(("case", "prf_id"), RFC4231_CASES)
def test_rfc4231_prf(case, prf_id):
    key, data, expected = RFC4231[case]
    prf = prf_for(prf_id)
    assert prf(key, data) == h(expected[prf_id])
    assert prf.output_size == prf.key_size == len(h(expected[prf_id]))


@pytest.mark.parametrize(("case", "prf_id"), RFC4231_CASES)
def test_rfc4231_integ_truncation(case, prf_id):
    """RFC 4868 §2.3: the ICV is the leftmost half of the HMAC output."""
    key, data, expected = RFC4231[case]
    integ_id, icv_size = INTEG_OF[prf_id]
    integ = integ_for(integ_id)
    icv = integ.sign(key, data)
    assert icv == h(expected[prf_id])[:icv_size]
    assert integ.icv_size == icv_size and integ.key_size == 2 * icv_size
    assert integ.verify(key, data, icv)
    assert not integ.verify(key, data + b"!", icv)
    assert not integ.verify(key, data, icv[:-1])
    assert not integ.verify(key, data, bytes([icv[0] ^ 1]) + icv[1:])


def test_hmac_sha1_96():
    """RFC 2202 case 1 HMAC-SHA-1 value truncated to 96 bits (RFC 2404)."""
    full = h("b617318655057264e28bc0b6fb378c8ef146be00")
    assert prf_for(PrfId.HMAC_SHA1)(b"\x0b" * 20, b"Hi There") == full
    integ = integ_for(IntegId.HMAC_SHA1_96)
    assert integ.sign(b"\x0b" * 20, b"Hi There") == full[:12]
    assert (integ.key_size, integ.icv_size) == (20, 12)


@pytest.mark.parametrize("prf_id", [PrfId.HMAC_MD5, PrfId.AES128_XCBC, PrfId(99)])
def test_unsupported_prf_is_named(prf_id):
    with pytest.raises(UnsupportedTransform, match=prf_id.name):
        prf_for(prf_id)


def test_unsupported_integ_is_named():
    with pytest.raises(UnsupportedTransform, match="AES_XCBC_96"):
        integ_for(IntegId.AES_XCBC_96)


# --- prf+ and key derivation (RFC 7296 §2.13, §2.14, §2.17, §2.18) -----------------


def test_prf_plus_by_hand():
    key, seed = b"K" * 32, b"the seed S"
    sha = hashes.SHA256()
    t1 = hmac_ref(sha, key, seed + b"\x01")
    t2 = hmac_ref(sha, key, t1 + seed + b"\x02")
    t3 = hmac_ref(sha, key, t2 + seed + b"\x03")
    prf = prf_for(PrfId.HMAC_SHA2_256)
    assert prf_plus(prf, key, seed, 96) == t1 + t2 + t3
    assert prf_plus(prf, key, seed, 70) == (t1 + t2 + t3)[:70]
    assert prf_plus(prf, key, seed, 0) == b""


def test_prf_plus_limit():
    prf = prf_for(PrfId.HMAC_SHA1)
    assert len(prf_plus(prf, b"k", b"s", 255 * 20)) == 255 * 20
    with pytest.raises(CryptoError, match="255|at most"):
        prf_plus(prf, b"k", b"s", 255 * 20 + 1)


NI, NR = bytes(range(32)), bytes(range(100, 132))
SPI_I, SPI_R = h("0011223344556677"), h("8899aabbccddeeff")
G_IR = bytes(range(200, 232))


def test_skeyseed_and_ike_keys_cbc():
    prf = prf_for(PrfId.HMAC_SHA2_256)
    seed = skeyseed(prf, NI, NR, G_IR)
    assert seed == hmac_ref(hashes.SHA256(), NI + NR, G_IR)

    keys = derive_ike_keys(prf, seed, NI, NR, SPI_I, SPI_R, encr_key_size=16, integ_key_size=32)
    stream = prf_plus(prf, seed, NI + NR + SPI_I + SPI_R, 32 + 2 * 32 + 2 * 16 + 2 * 32)
    assert keys.sk_d == stream[0:32]
    assert keys.sk_ai == stream[32:64]
    assert keys.sk_ar == stream[64:96]
    assert keys.sk_ei == stream[96:112]
    assert keys.sk_er == stream[112:128]
    assert keys.sk_pi == stream[128:160]
    assert keys.sk_pr == stream[160:192]
    assert "sk_d" not in repr(keys) and stream[:4].hex() not in repr(keys)


def test_ike_keys_aead_sha384():
    """AES-256-GCM: 36-octet SK_e (key + salt), no SK_a; SK_d/SK_p sized by the PRF."""
    prf = prf_for(PrfId.HMAC_SHA2_384)
    cipher = cipher_for(EncrId.AES_GCM_16, 256)
    seed = skeyseed(prf, NI, NR, G_IR)
    keys = derive_ike_keys(prf, seed, NI, NR, SPI_I, SPI_R, cipher.key_size, 0)
    stream = prf_plus(prf, seed, NI + NR + SPI_I + SPI_R, 48 + 36 + 36 + 48 + 48)
    assert (keys.sk_ai, keys.sk_ar) == (b"", b"")
    assert keys.sk_d == stream[:48]
    assert keys.sk_ei == stream[48:84] and keys.sk_er == stream[84:120]
    assert keys.sk_pi == stream[120:168] and keys.sk_pr == stream[168:216]


def test_rekey_skeyseed():
    prf = prf_for(PrfId.HMAC_SHA2_256)
    sk_d = b"\x42" * 32
    assert rekey_skeyseed(prf, sk_d, G_IR, NI, NR) == hmac_ref(
        hashes.SHA256(), sk_d, G_IR + NI + NR
    )


def test_child_keymat_and_split():
    prf = prf_for(PrfId.HMAC_SHA2_256)
    sk_d = b"\x17" * 32
    length = 2 * (16 + 32)
    keymat = child_keymat(prf, sk_d, NI, NR, length)
    assert keymat == prf_plus(prf, sk_d, NI + NR, length)
    with_pfs = child_keymat(prf, sk_d, NI, NR, length, shared_secret=G_IR)
    assert with_pfs == prf_plus(prf, sk_d, G_IR + NI + NR, length)

    keys = split_child_keys(keymat, encr_key_size=16, integ_key_size=32)
    assert keys.encr_i == keymat[0:16]
    assert keys.integ_i == keymat[16:48]
    assert keys.encr_r == keymat[48:64]
    assert keys.integ_r == keymat[64:96]
    assert keymat[:4].hex() not in repr(keys)

    aead = split_child_keys(keymat[:72], encr_key_size=36, integ_key_size=0)
    assert (aead.encr_i, aead.integ_i, aead.encr_r, aead.integ_r) == (
        keymat[:36],
        b"",
        keymat[36:72],
        b"",
    )
    with pytest.raises(CryptoError):
        split_child_keys(keymat[:-1], 16, 32)


def test_psk_auth():
    prf = prf_for(PrfId.HMAC_SHA2_256)
    sha = hashes.SHA256()
    id_body = b"\x02\x00\x00\x00" + b"left.example"
    octets = signed_octets(b"IKE_SA_INIT bytes", NR, prf, b"\x33" * 32, id_body)
    assert octets == b"IKE_SA_INIT bytes" + NR + hmac_ref(sha, b"\x33" * 32, id_body)
    expected = hmac_ref(sha, hmac_ref(sha, b"secret", b"Key Pad for IKEv2"), octets)
    assert psk_auth(prf, b"secret", octets) == expected


# --- RFC 8439 §2.8.2 through the IPsec interface (RFC 7634) -------------------------

SUNSCREEN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
RFC8439_CIPHERTEXT = h(
    """d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
       a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
       3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
       1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
       92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
       fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
       3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
       61 16"""
)
RFC8439_TAG = h("1a e1 0b 59 4f 09 e2 6a 7e 90 2e cb d0 60 06 91")


def test_rfc8439_chacha20_poly1305():
    cipher = cipher_for(EncrId.CHACHA20_POLY1305, None)
    assert (cipher.key_size, cipher.iv_size, cipher.icv_size) == (36, 8, 16)
    key = bytes(range(0x80, 0xA0)) + h("07000000")  # key || salt: nonce = salt || iv
    iv, aad = h("4041424344454647"), h("50515253c0c1c2c3c4c5c6c7")
    sealed = cipher.encrypt(key, iv, SUNSCREEN, aad)
    assert sealed == RFC8439_CIPHERTEXT + RFC8439_TAG
    assert cipher.decrypt(key, iv, sealed, aad) == SUNSCREEN
    with pytest.raises(IntegrityError):
        cipher.decrypt(key, iv, sealed, aad[:-1] + b"\x00")
    with pytest.raises(IntegrityError):
        cipher.decrypt(key, iv, sealed[:-1] + bytes([sealed[-1] ^ 1]), aad)


def test_aes_gcm_nonce_is_salt_then_iv():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher = cipher_for(EncrId.AES_GCM_16, 128)
    assert (cipher.key_size, cipher.iv_size, cipher.icv_size) == (20, 8, 16)
    key, iv = bytes(range(20)), b"\xa0" * 8
    expected = AESGCM(key[:16]).encrypt(key[16:] + iv, b"data", b"aad")
    assert cipher.encrypt(key, iv, b"data", b"aad") == expected


def test_aes_cbc_sizes_and_round_trip():
    for bits in (128, 192, 256):
        cipher = cipher_for(EncrId.AES_CBC, bits)
        assert (cipher.key_size, cipher.block_size, cipher.iv_size, cipher.icv_size) == (
            bits // 8,
            16,
            16,
            0,
        )
        assert not cipher.is_aead
        key, iv = bytes(bits // 8), bytes(range(16))
        ct = cipher.encrypt(key, iv, b"A" * 32, b"ignored")
        assert len(ct) == 32 and cipher.decrypt(key, iv, ct, b"other") == b"A" * 32
        with pytest.raises(CryptoError):
            cipher.encrypt(key, iv, b"A" * 31, b"")


@pytest.mark.parametrize(
    ("encr_id", "key_bits"),
    [
        (EncrId.AES_CBC, None),
        (EncrId.AES_CBC, 512),
        (EncrId.AES_GCM_16, None),
        (EncrId.CHACHA20_POLY1305, 128),
        (EncrId.AES_GCM_8, 128),
        (EncrId.TRIPLE_DES, None),
    ],
)
def test_unsupported_ciphers(encr_id, key_bits):
    with pytest.raises(UnsupportedTransform):
        cipher_for(encr_id, key_bits)


# --- RFC 5903 §8 ECDH and RFC 7748 §6 X25519/X448 -----------------------------------

RFC5903 = {
    DhId.ECP_256: dict(
        i="C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
        gix="DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
        giy="5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        r="C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
        grx="D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
        gry="56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        girx="D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
    ),
    DhId.ECP_384: dict(
        i="""099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
             E35B5380 41E649EE 3FAEF896 783AB194""",
        gix="""667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
               DE3AC808 ACB4BDB4 C88732AE E95F41AA""",
        giy="""9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
               EB9FCFF3 C2C947DA E69B4C63 4573A81C""",
        r="""41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
             E0308312 916B8ED2 960E4BD5 5A7448FC""",
        grx="""E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
               0D1AC43A 0336DEF9 6FDA41D0 774A3571""",
        gry="""DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
               F83FA401 42209DFF 5EAAD96D B9E6386C""",
        girx="""11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
                D6031355 69B9E9D0 9CF5D4A2 70F59746""",
    ),
    DhId.ECP_521: dict(
        i="""0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0
             95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D
             4A52""",
        gix="""0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE
               E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C
               ED3E""",
        giy="""017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A
               D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F
               9582""",
        r="""0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E
             9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168
             5EB9""",
        grx="""00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21
               9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9
               460F""",
        gry="""015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87
               220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F
               C56A""",
        girx="""01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04
                D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3
                DDEA""",
    ),
}


@pytest.mark.parametrize("group", list(RFC5903))
def test_rfc5903_ecdh(group):
    v = {name: h(value) for name, value in RFC5903[group].items()}
    initiator = key_exchange_from_private(group, v["i"])
    responder = key_exchange_from_private(group, v["r"])
    assert initiator.public_key == v["gix"] + v["giy"]
    assert responder.public_key == v["grx"] + v["gry"]
    assert initiator.shared_secret(responder.public_key) == v["girx"]
    assert responder.shared_secret(initiator.public_key) == v["girx"]


X25519_ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
X25519_ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
X25519_BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
X25519_BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
X25519_K = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def test_rfc7748_x25519():
    alice = key_exchange_from_private(DhId.CURVE25519, h(X25519_ALICE))
    bob = key_exchange_from_private(DhId.CURVE25519, h(X25519_BOB))
    assert alice.public_key == h(X25519_ALICE_PUB)
    assert bob.public_key == h(X25519_BOB_PUB)
    assert alice.shared_secret(bob.public_key) == h(X25519_K)
    assert bob.shared_secret(alice.public_key) == h(X25519_K)


X448_ALICE = (
    "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d"
    "d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"
)
X448_ALICE_PUB = (
    "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c"
    "22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0"
)
X448_BOB = (
    "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d"
    "6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"
)
X448_BOB_PUB = (
    "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430"
    "27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609"
)
X448_K = (
    "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b"
    "b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d"
)


def test_rfc7748_x448():
    alice = key_exchange_from_private(DhId.CURVE448, h(X448_ALICE))
    bob = key_exchange_from_private(DhId.CURVE448, h(X448_BOB))
    assert alice.public_key == h(X448_ALICE_PUB)
    assert bob.public_key == h(X448_BOB_PUB)
    assert alice.shared_secret(bob.public_key) == h(X448_K)
    assert bob.shared_secret(alice.public_key) == h(X448_K)
