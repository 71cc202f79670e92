"""Known-answer tests for MS-CHAPv2: RFC 2759 §9.2 and RFC 3079 §3.5.3 (same inputs)."""

from __future__ import annotations

from ikepulse.crypto import mschapv2


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


USER = b"User"
PASSWORD = "clientPass"
AUTHENTICATOR_CHALLENGE = h("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
PEER_CHALLENGE = h("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
NT_RESPONSE = h("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
PASSWORD_HASH = h("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")


def test_nt_password_hash():
    assert mschapv2.nt_password_hash(PASSWORD) == PASSWORD_HASH


def test_password_hash_hash():
    expected = h("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
    assert mschapv2.hash_nt_password_hash(PASSWORD_HASH) == expected


def test_challenge_hash():
    challenge = mschapv2.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER)
    assert challenge == h("D0 2E 43 86 BC E9 12 26")


def test_challenge_hash_ignores_the_domain():
    plain = mschapv2.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER)
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, b"DOM\\User") == plain


def test_challenge_response():
    assert mschapv2.challenge_response(h("D0 2E 43 86 BC E9 12 26"), PASSWORD_HASH) == NT_RESPONSE


def test_generate_nt_response():
    response = mschapv2.generate_nt_response(
        AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD
    )
    assert response == NT_RESPONSE


def test_authenticator_response():
    response = mschapv2.authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER
    )
    assert response == b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
    assert mschapv2.authenticator_response_ok(response, response.lower().upper())
    assert not mschapv2.authenticator_response_ok(response, b"S=" + b"0" * 40)


def test_rfc3079_master_and_start_keys():
    hash_hash = mschapv2.hash_nt_password_hash(PASSWORD_HASH)
    master = mschapv2.master_key(hash_hash, NT_RESPONSE)
    assert master == h("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
    server_send = mschapv2.asymmetric_start_key(master, send=True, server=True)
    assert server_send == h("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
    assert mschapv2.asymmetric_start_key(master, send=False, server=False) == server_send
    client_send = mschapv2.asymmetric_start_key(master, send=True, server=False)
    assert client_send != server_send
    assert mschapv2.asymmetric_start_key(master, send=False, server=True) == client_send


def test_msk_is_receive_then_send_key_then_zeros():
    master = mschapv2.master_key(mschapv2.hash_nt_password_hash(PASSWORD_HASH), NT_RESPONSE)
    msk = mschapv2.msk(PASSWORD, NT_RESPONSE)
    assert len(msk) == 64
    assert msk[:16] == mschapv2.asymmetric_start_key(master, send=False, server=True)
    assert msk[16:32] == h("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
    assert msk[32:] == bytes(32)
