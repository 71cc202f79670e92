"""IKEv1 / ISAKMP registries (RFC 2409 App. A, RFC 4754 §4, IANA "IPsec ISAKMP DOI").

Like wire/enums.py, unknown values decode to ``UNKNOWN_<n>`` pseudo-members.
"""

from __future__ import annotations

from .enums import IanaEnum


class EncrV1(IanaEnum):
    """Phase 1 Encryption Algorithm attribute values (RFC 2409 App. A)."""

    DES = 1
    IDEA = 2
    BLOWFISH = 3
    RC5 = 4
    TRIPLE_DES = 5
    CAST = 6
    AES_CBC = 7
    CAMELLIA_CBC = 8


class HashV1(IanaEnum):
    """Phase 1 Hash Algorithm attribute values (RFC 2409 App. A, RFC 4868)."""

    MD5 = 1
    SHA1 = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class AuthMethodV1(IanaEnum):
    """Phase 1 Authentication Method attribute values (RFC 2409 App. A, RFC 4754 §4,
    draft-ietf-ipsec-isakmp-xauth for the private-use XAUTH values)."""

    PSK = 1
    DSS = 2
    RSA_SIG = 3
    RSA_ENC = 4
    RSA_REV_ENC = 5
    ECDSA_256 = 9
    ECDSA_384 = 10
    ECDSA_521 = 11
    XAUTH_INIT_PSK = 65001
    XAUTH_RESP_PSK = 65002
    XAUTH_INIT_RSA = 65005
    XAUTH_RESP_RSA = 65006
