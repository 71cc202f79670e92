"""IKEv1 / ISAKMP registries (RFC 2408 §3, RFC 2407 §4, RFC 2409 App. A, RFC 3947, RFC 3706).

Like ``enums``, unknown values decode to ``UNKNOWN_<n>`` pseudo-members instead of raising.
"""

from __future__ import annotations

from .enums import IanaEnum

KEY_IKE = 1
"""RFC 2407 §4.4.2: the only phase 1 transform ID."""
DOI_IPSEC = 1
"""RFC 2407 §4.2: the IPsec domain of interpretation."""
SIT_IDENTITY_ONLY = 1
"""RFC 2407 §4.2.1 situation bit."""
VID_DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")
"""Vendor ID of RFC 3706 §7 Dead Peer Detection."""
VID_NATT = bytes.fromhex("4a131c81070358455c5728f20e95452f")
"""Vendor ID of RFC 3947 NAT traversal (§3.1: MD5("RFC 3947"))."""


class ExchangeV1(IanaEnum):
    """RFC 2408 §3.1 / RFC 2409 exchange types."""

    BASE = 1
    MAIN = 2
    AUTH_ONLY = 3
    AGGRESSIVE = 4
    INFORMATIONAL = 5
    TRANSACTION = 6
    QUICK = 32
    NEW_GROUP = 33


class PayloadV1(IanaEnum):
    """RFC 2408 §3.1 next-payload values, plus NAT-T (RFC 3947) and fragmentation."""

    NONE = 0
    SA = 1
    PROPOSAL = 2
    TRANSFORM = 3
    KE = 4
    ID = 5
    CERT = 6
    CR = 7
    HASH = 8
    SIG = 9
    NONCE = 10
    N = 11
    D = 12
    VID = 13
    ATTR = 14
    NAT_D = 20
    NAT_OA = 21
    NAT_D_DRAFT = 130
    NAT_OA_DRAFT = 131
    FRAGMENT = 132


class NotifyV1(IanaEnum):
    """RFC 2408 §3.14.1 error types, RFC 2407 §4.6.3 status types, RFC 3706 DPD."""

    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    R_U_THERE = 36136
    R_U_THERE_ACK = 36137

    @property
    def is_error(self) -> bool:
        """§3.14.1: values below 16384 are errors, the rest status."""
        return self._value_ < 16384


class ProtocolV1(IanaEnum):
    """RFC 2407 §4.4.1 protocol IDs."""

    ISAKMP = 1
    AH = 2
    ESP = 3
    IPCOMP = 4


class IdV1(IanaEnum):
    """RFC 2407 §4.6.2.1 identification types."""

    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class Phase1Attr(IanaEnum):
    """RFC 2409 App. A attribute classes."""

    ENCRYPTION = 1
    HASH = 2
    AUTH_METHOD = 3
    GROUP = 4
    GROUP_TYPE = 5
    GROUP_PRIME = 6
    GROUP_GEN_ONE = 7
    GROUP_GEN_TWO = 8
    GROUP_CURVE_A = 9
    GROUP_CURVE_B = 10
    LIFE_TYPE = 11
    LIFE_DURATION = 12
    PRF = 13
    KEY_LENGTH = 14
    FIELD_SIZE = 15
    GROUP_ORDER = 16


class EncrV1(IanaEnum):
    """RFC 2409 App. A encryption algorithms (+ IANA AES/Camellia)."""

    DES = 1
    IDEA = 2
    BLOWFISH = 3
    RC5 = 4
    TRIPLE_DES = 5
    CAST = 6
    AES_CBC = 7
    CAMELLIA_CBC = 8


class HashV1(IanaEnum):
    """RFC 2409 App. A hash algorithms (+ IANA SHA-2)."""

    MD5 = 1
    SHA1 = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class AuthMethodV1(IanaEnum):
    """RFC 2409 App. A authentication methods, RFC 4754 ECDSA, XAuth draft values."""

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


class Phase2Attr(IanaEnum):
    """RFC 2407 §4.5 IPsec SA attributes (+ ECN RFC 3168, ESN RFC 4304)."""

    LIFE_TYPE = 1
    LIFE_DURATION = 2
    GROUP = 3
    ENCAP_MODE = 4
    AUTH_ALG = 5
    KEY_LENGTH = 6
    KEY_ROUNDS = 7
    COMPRESS_DICT = 8
    COMPRESS_ALG = 9
    ECN_TUNNEL = 10
    ESN = 11


class LifeType(IanaEnum):
    """RFC 2407 §4.5 / RFC 2409 App. A life types."""

    SECONDS = 1
    KILOBYTES = 2


class EncapMode(IanaEnum):
    """RFC 2407 §4.5 and RFC 3947 §5 encapsulation modes (draft values as strongSwan)."""

    TUNNEL = 1
    TRANSPORT = 2
    UDP_TUNNEL = 3
    UDP_TRANSPORT = 4
    UDP_TUNNEL_DRAFT = 61443
    UDP_TRANSPORT_DRAFT = 61444


class EspIdV1(IanaEnum):
    """RFC 2407 §4.4.4 ESP transform IDs (IANA "IPsec ESP Transform Identifiers")."""

    DES = 2
    TRIPLE_DES = 3
    NULL = 11
    AES_CBC = 12
    AES_CTR = 13
    AES_CCM_8 = 14
    AES_CCM_12 = 15
    AES_CCM_16 = 16
    AES_GCM_8 = 18
    AES_GCM_12 = 19
    AES_GCM_16 = 20
    NULL_AUTH_AES_GMAC = 23


class AuthAlgV1(IanaEnum):
    """RFC 2407 §4.5 phase 2 AUTH_ALG values (+ RFC 4868 SHA-2)."""

    HMAC_MD5 = 1
    HMAC_SHA1 = 2
    DES_MAC = 3
    KPDK = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
