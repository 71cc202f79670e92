"""MS-CHAPv2 (RFC 2759 §8) and the MPPE keys it yields (RFC 3079 §3.4), as EAP-MSCHAPv2
uses them for the MSK.

MD4 comes from pycryptodome (pyca has none); single DES is pyca's decrepit TripleDES with
k1 = k2 = k3, which is DES-EDE collapsing to one DES encryption. No primitive is written here.
"""

from __future__ import annotations

import hmac

from Crypto.Hash import MD4
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, modes

_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"
_MASTER_MAGIC = b"This is the MPPE Master Key"
_SEND_MAGIC = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_RECEIVE_MAGIC = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


def _sha1(*parts: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    for part in parts:
        digest.update(part)
    return digest.finalize()


def _md4(data: bytes) -> bytes:
    return MD4.new(data).digest()


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash (§8.3): MD4 of the password in UTF-16LE (16 octets)."""
    return _md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash (§8.4): MD4 of the NT password hash."""
    return _md4(password_hash)


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash (§8.2): the first 8 octets of SHA1(peer | authenticator | user name),
    the user name without a prepended ``DOMAIN\\``."""
    username = username.rsplit(b"\\", 1)[-1]
    return _sha1(peer_challenge, authenticator_challenge, username)[:8]


def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 octets, 7 bits each, the low (parity) bit left 0 (§8.6)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des_encrypt(clear: bytes, seven: bytes) -> bytes:
    """DesEncrypt (§8.6): one DES block under a 7-octet key."""
    key = _des_key(seven)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (§8.5): the 8-octet challenge DES-encrypted under each third of
    the password hash padded to 21 octets (24 octets)."""
    padded = password_hash + bytes(5)
    return b"".join(_des_encrypt(challenge, padded[i : i + 7]) for i in (0, 7, 14))


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: bytes, password: str
) -> bytes:
    """GenerateNTResponse (§8.1)."""
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


def authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: bytes,
) -> bytes:
    """GenerateAuthenticatorResponse (§8.7): ``S=`` and 40 upper-case hex digits."""
    hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = _sha1(hash_hash, nt_response, _AUTH_MAGIC1)
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return b"S=" + _sha1(digest, challenge, _AUTH_MAGIC2).hex().upper().encode()


def authenticator_response_ok(expected: bytes, received: bytes) -> bool:
    """Compare the server's ``S=...`` in constant time (§8.8), hex case ignored."""
    return hmac.compare_digest(expected.upper(), received[:42].upper())


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 §3.4): 16 octets."""
    return _sha1(password_hash_hash, nt_response, _MASTER_MAGIC)[:16]


def asymmetric_start_key(master: bytes, *, send: bool, server: bool) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 §3.4), 128-bit: the client's send key is the
    server's receive key and the other way round."""
    magic = _SEND_MAGIC if send != server else _RECEIVE_MAGIC
    return _sha1(master, _SHS_PAD1, magic, _SHS_PAD2)[:16]


def msk(password: str, nt_response: bytes) -> bytes:
    """The 64-octet EAP-MSCHAPv2 MSK: MasterReceiveKey | MasterSendKey (the server's view,
    as strongSwan and Windows build it) and 32 zero octets."""
    master = master_key(hash_nt_password_hash(nt_password_hash(password)), nt_response)
    receive = asymmetric_start_key(master, send=False, server=True)
    send = asymmetric_start_key(master, send=True, server=True)
    return receive + send + bytes(32)
