"""Named regression cases: the trigger structure of published IKEv2 bugs (fuzz family 5).

Each case is a generator over an ``Arena`` that yields its datagram(s); the harness feeds
each one before the next is made, so a case can react to the target's answers (and the
sealed ones get the message ID the target expects). Sources: the advisories in strongSwan's
NEWS and in Libreswan's security/ folder. Cases marked *half-open* first run IKE_SA_INIT
with the target as an attacker who does not know the PSK (``half_open``): the attacker then
holds SK keys for a half-open SA but is not authenticated, so everything it sends counts as
unauthenticated input.

Skipped by design, because ikepulse has no code that handles their input:

- IKEv1 only: not IKEv2 input, so they are the IKEv1 harness's (``fuzz_v1``'s
  ``v1_regression_cases``, fed by ``fuzz_v1_harness``, tests/sim/test_fuzz_v1.py):
  strongSwan CVE-2013-6076 (IKEv1 fragments), CVE-2009-0790 (pluto DPD); Libreswan
  CVE-2023-38711, CVE-2023-38712, CVE-2023-30570, CVE-2022-23094, CVE-2020-1763,
  CVE-2019-10155, CVE-2016-5361, CVE-2015-3204, CVE-2024-3652. Libreswan CVE-2026-50721
  has no case there yet.
- Certificates and signatures (PSK only; no X.509 or signature is parsed from the wire):
  strongSwan CVE-2021-41990 (RSASSA-PSS salt), CVE-2022-40617 (revocation fetch),
  CVE-2017-9022, CVE-2017-9023, CVE-2017-11185, CVE-2018-16151, CVE-2018-16152,
  CVE-2018-17540, CVE-2018-6459, CVE-2013-2944, CVE-2026-35329, CVE-2026-35331,
  CVE-2026-35334; Libreswan CVE-2026-50722, CVE-2026-14957.
- EAP, TLS, RADIUS, XAuth: strongSwan CVE-2015-8023, CVE-2021-45079, CVE-2023-26463,
  CVE-2025-62291, CVE-2026-25075, CVE-2026-35328, CVE-2026-35330, CVE-2026-35332,
  CVE-2026-35333, CVE-2013-5018.
- Local interfaces and configuration: strongSwan CVE-2018-5388 (stroke socket),
  CVE-2025-9615 (NetworkManager); Libreswan CVE-2024-2357 (own PSK missing),
  CVE-2013-2052 (OE DNS records).
- Initiator against a rogue responder: strongSwan CVE-2015-4171 (EAP credentials).

CVE-2018-10811 is about HMAC-MD5 as PRF in key derivation (strongSwan NEWS 5.6.3), not a
missing KE after INVALID_KE_PAYLOAD; that structure is ``invalid_ke_then_no_ke``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ..wire.enums import (
    AuthMethod,
    CertEncoding,
    DhId,
    EncrId,
    ExchangeType,
    IdType,
    IntegId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
)
from ..wire.message import (
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    Message,
    decode_message,
    encode_message,
)
from ..wire.payloads import (
    AuthPayload,
    CertPayload,
    EncryptedFragmentPayload,
    IdiPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    SaPayload,
    UnknownPayload,
)
from ..wire.sa import Proposal, Transform
from ..wire.traffic_selectors import TrafficSelector, TsiPayload, TsrPayload
from .fuzz import ATTACKER, TARGET_LIVENESS, Arena, Hostile, RandomChoices, half_open, sealed_by
from .fuzz_inputs import child_payloads, encode_body, esp_proposal, ike_proposal, init_payloads
from .loopback import LEFT, LEFT_NET, RIGHT_NET

Case = Iterator[Hostile]


def fixed(seed) -> RandomChoices:
    """The same choices every time for ``seed``: a case is one fixed structure."""
    return RandomChoices(random.Random(seed))


def init_request(arena: Arena, label: str, payloads: list[Payload]) -> Hostile:
    """An IKE_SA_INIT request with a fresh initiator SPI."""
    spi = arena.rng.randbytes(8)
    msg = Message(spi, bytes(8), ExchangeType.IKE_SA_INIT, FLAG_INITIATOR, 0, tuple(payloads))
    return Hostile(encode_message(msg), "cve", label, src=ATTACKER)


def with_proposal(arena: Arena, label: str, *transforms: tuple) -> Hostile:
    """IKE_SA_INIT offering one IKE proposal made of ``(type, id[, key length])``."""
    proposal = Proposal(1, ProtocolId.IKE, b"", tuple(Transform.make(*t) for t in transforms))
    _, ke, nonce = init_payloads(fixed(label))
    return init_request(arena, label, [SaPayload((proposal,)), ke, nonce])


def with_ke(arena: Arena, label: str, group: int, data: bytes) -> Hostile:
    sa, _, nonce = init_payloads(fixed(label))
    return init_request(arena, label, [sa, KePayload(DhId(group), data), nonce])


# --- unauthenticated: IKE_SA_INIT and forged datagrams ----------------------------------------


def cve_2014_9221_ke_group_1025(arena: Arena) -> Case:
    """strongSwan: a KE payload with DH group 1025 (an internal id) crashed charon."""
    yield with_ke(arena, "cve_2014_9221", 1025, bytes(range(32)))
    yield with_proposal(
        arena,
        "cve_2014_9221",
        (TransformType.ENCR, EncrId.AES_GCM_16, 256),
        (TransformType.PRF, PrfId.HMAC_SHA2_256),
        (TransformType.DH, 1025),
    )


def cve_2008_4551_ke_all_zeroes(arena: Arena) -> Case:
    """strongSwan 4.2.7: a KE payload of zeroes only made GMP return NULL."""
    yield with_ke(arena, "cve_2008_4551", DhId.CURVE25519, bytes(32))
    yield with_ke(arena, "cve_2008_4551", DhId.CURVE25519, b"")


def cve_2015_3240_bad_dh_value(arena: Arena) -> Case:
    """Libreswan: a public value that makes the DH computation fail (a low-order point)."""
    yield with_ke(arena, "cve_2015_3240", DhId.CURVE25519, b"\x01" + bytes(31))


def cve_2023_41913_oversized_ke(arena: Arena) -> Case:
    """strongSwan charon-tkm: a DH public value longer than the group's overflowed a buffer."""
    yield with_ke(arena, "cve_2023_41913", DhId.CURVE25519, bytes(range(256)) * 7)
    payloads = child_payloads(arena, fixed(1))
    payloads[2] = KePayload(DhId.CURVE25519, bytes(1792))
    yield arena.sealed("cve", "cve_2023_41913", ExchangeType.CREATE_CHILD_SA, payloads)


def cve_2016_5391_proposal_without_dh(arena: Arena) -> Case:
    """Libreswan: an IKE proposal lacking a DH transform was dereferenced as if it had one."""
    yield with_proposal(
        arena,
        "cve_2016_5391",
        (TransformType.ENCR, EncrId.AES_GCM_16, 256),
        (TransformType.PRF, PrfId.HMAC_SHA2_256),
    )


def cve_2016_3071_aes_xcbc(arena: Arena) -> Case:
    """Libreswan: negotiating aes_xcbc, which its crypto library lacked, crashed pluto."""
    yield with_proposal(
        arena,
        "cve_2016_3071",
        (TransformType.ENCR, EncrId.AES_CBC, 128),
        (TransformType.PRF, PrfId.AES128_XCBC),
        (TransformType.INTEG, IntegId.AES_XCBC_96),
        (TransformType.DH, DhId.CURVE25519),
    )


def cve_2018_10811_prf_hmac_md5(arena: Arena) -> Case:
    """strongSwan: HMAC-MD5 as PRF left a variable uninitialised in the key derivation."""
    yield with_proposal(
        arena,
        "cve_2018_10811",
        (TransformType.ENCR, EncrId.AES_CBC, 256),
        (TransformType.PRF, PrfId.HMAC_MD5),
        (TransformType.INTEG, IntegId.HMAC_MD5_96),
        (TransformType.DH, DhId.CURVE25519),
    )


def cve_2013_6467_missing_payloads(arena: Arena) -> Case:
    """Libreswan: withheld or renumbered IKE_SA_INIT payloads were dereferenced anyway."""
    for missing in range(3):
        payloads = init_payloads(fixed(missing))
        del payloads[missing]
        yield init_request(arena, "cve_2013_6467", payloads)
    sa, ke, nonce = init_payloads(fixed(3))
    swapped = [
        sa,
        UnknownPayload(PayloadType.NONCE, False, encode_body(ke)),
        UnknownPayload(PayloadType.KE, False, nonce.data),
    ]
    yield init_request(arena, "cve_2013_6467", swapped)


def cve_2013_4564_short_datagrams(arena: Arena) -> Case:
    """Libreswan: datagrams too short to hold the IKE version, or of another major version."""
    valid = init_request(arena, "cve_2013_4564", init_payloads(fixed(4))).data
    for size in (0, 1, 17, 18, 27):
        yield Hostile(valid[:size], "cve", "cve_2013_4564")
    for version in (0x10, 0x30, 0x2F):
        yield Hostile(valid[:17] + bytes([version]) + valid[18:], "cve", "cve_2013_4564")
    yield Hostile(valid + bytes(100), "cve", "cve_2013_4564")


def cve_2015_3991_ikev1_payload_types(arena: Arena) -> Case:
    """strongSwan: IKEv1 payload types inside IKEv2 messages were used as IKEv2 payloads."""
    ikev1 = [UnknownPayload(PayloadType(t), False, bytes(8)) for t in range(1, 14)]
    yield init_request(arena, "cve_2015_3991", init_payloads(fixed(5)) + ikev1)
    critical = [UnknownPayload(PayloadType(1), True, bytes(8))]
    yield init_request(arena, "cve_2015_3991", init_payloads(fixed(6)) + critical)
    yield arena.sealed("cve", "cve_2015_3991", ExchangeType.INFORMATIONAL, ikev1)


def cve_2026_12413_fragment_with_unknown_payloads(arena: Arena) -> Case:
    """Libreswan: an IKEv2 fragment behind many unknown outer payloads overflowed an array."""
    outer = [UnknownPayload(PayloadType(200), False, b"") for _ in range(40)]
    fragment = EncryptedFragmentPayload(PayloadType.IDI, 1, 2, bytes(64))
    msg = Message(
        arena.spi_i,
        arena.spi_r,
        ExchangeType.IKE_AUTH,
        FLAG_INITIATOR,
        arena.next_mid,
        tuple(outer) + (fragment,),
    )
    yield Hostile(encode_message(msg), "cve", "cve_2026_12413")


def cve_2009_1957_create_child_sa_after_bad_init(arena: Arena) -> Case:
    """strongSwan 4.2.15: a malformed IKE_SA_INIT left a half-made SA that a CREATE_CHILD_SA
    request then dereferenced."""
    sa, ke, _ = init_payloads(fixed(7))
    first = init_request(arena, "cve_2009_1957", [sa, ke])
    yield first
    spi_i = first.data[:8]
    spi_r = next((a.data[8:16] for a in arena.outbox if a.data[:8] == spi_i), bytes(8))
    forged = Message(
        spi_i,
        spi_r,
        ExchangeType.CREATE_CHILD_SA,
        FLAG_INITIATOR,
        1,
        (UnknownPayload(PayloadType.SK, False, bytes(48)),),
    )
    yield Hostile(encode_message(forged), "cve", "cve_2009_1957", src=ATTACKER)


# --- unauthenticated: half-open SAs keyed by an attacker ---------------------------------------


def cve_2019_12312_informational_instead_of_ike_auth(arena: Arena) -> Case:
    """Libreswan: INFORMATIONAL instead of IKE_AUTH after IKE_SA_INIT; the error answer was
    encrypted with keys not yet installed. *Half-open.*"""
    attacker = yield from half_open(arena, "cve_2019_12312")
    notify = NotifyPayload(NotifyType.INVALID_SYNTAX)
    yield sealed_by(attacker, "cve_2019_12312", ExchangeType.INFORMATIONAL, [notify])


def cve_2014_2338_rekey_before_auth(arena: Arena) -> Case:
    """strongSwan: rekeying an IKE SA during IKE_AUTH set it to established without
    authentication. No SA may become ESTABLISHED. *Half-open.*"""
    attacker = yield from half_open(arena, "cve_2014_2338")
    rng = random.Random(8)
    rekey = [
        SaPayload((ike_proposal(rng.randbytes(8)),)),
        NoncePayload(rng.randbytes(32)),
        KePayload(DhId.CURVE25519, rng.randbytes(32)),
    ]
    yield sealed_by(attacker, "cve_2014_2338", ExchangeType.CREATE_CHILD_SA, rekey)


def cve_2009_1958_ike_auth_without_ts(arena: Arena) -> Case:
    """strongSwan 4.2.15: an IKE_AUTH request with TSi but no TSr (or the reverse) hit a
    NULL pointer: from a half-open attacker; then a CREATE_CHILD_SA without TSr sealed by
    the authenticated peer."""
    sa, _, _, tsi, tsr = child_payloads(arena, fixed(9))
    auth = [IdiPayload(IdType.ID_FQDN, b"left.example"), AuthPayload(AuthMethod(2), bytes(32))]
    for selectors in ([tsi], [tsr]):
        attacker = yield from half_open(arena, f"cve_2009_1958 {selectors[0].TYPE.name}")
        payloads = auth + [sa] + selectors
        yield sealed_by(attacker, "cve_2009_1958", ExchangeType.IKE_AUTH, payloads)
    _, nonce, ke, _, _ = child_payloads(arena, fixed(9))
    no_tsr = [sa, nonce, ke, tsi]
    yield arena.sealed("cve", "cve_2009_1958", ExchangeType.CREATE_CHILD_SA, no_tsr)


def cve_2013_6075_crafted_identity(arena: Arena) -> Case:
    """strongSwan: a crafted ID_DER_ASN1_DN identity overran a length check; here also
    address identities of the wrong length. *Half-open.*"""
    identities = (
        (IdType.ID_DER_ASN1_DN, b"\x30\x84\xff\xff\xff\xff\x31\x00"),
        (IdType.ID_DER_ASN1_DN, b"\x30\x03\x31\x80"),
        (IdType.ID_IPV4_ADDR, b"\xc0\x00\x02"),
        (IdType.ID_IPV6_ADDR, bytes(4)),
    )
    for id_type, data in identities:
        attacker = yield from half_open(arena, f"cve_2013_6075 {id_type.name}")
        payloads = [IdiPayload(id_type, data), AuthPayload(AuthMethod(2), bytes(32))]
        yield sealed_by(attacker, "cve_2013_6075", ExchangeType.IKE_AUTH, payloads)


def cve_2010_2628_long_identity(arena: Arena) -> Case:
    """strongSwan 4.3.7: snprintf misuse on crafted identities and certificates. *Half-open.*"""
    attacker = yield from half_open(arena, "cve_2010_2628")
    text = b"%s%n%x" * 250
    payloads = [
        IdiPayload(IdType.ID_FQDN, text),
        CertPayload(CertEncoding.X509_SIGNATURE, text),
        AuthPayload(AuthMethod.SHARED_KEY_MIC, bytes(32)),
    ]
    yield sealed_by(attacker, "cve_2010_2628", ExchangeType.IKE_AUTH, payloads)


def cve_2021_41991_many_certificates(arena: Arena) -> Case:
    """strongSwan: many different certificates overflowed the certificate cache; ikepulse
    carries CERT payloads without parsing them (16 allowed, 17 rejected). *Half-open.*"""
    rng = random.Random(10)
    for count in (16, 17):
        attacker = yield from half_open(arena, f"cve_2021_41991 {count}")
        certs = [CertPayload(CertEncoding.X509_SIGNATURE, rng.randbytes(300)) for _ in range(count)]
        payloads = [IdiPayload(IdType.ID_FQDN, b"left.example"), *certs]
        payloads.append(AuthPayload(AuthMethod.RSA_SIG, rng.randbytes(256)))
        yield sealed_by(attacker, "cve_2021_41991", ExchangeType.IKE_AUTH, payloads)


# --- authenticated: sealed by the established peer ---------------------------------------------


def cve_2023_38710_rekey_sa_invalid_protocol(arena: Arena) -> Case:
    """Libreswan: N(REKEY_SA) with protocol 0 or 1 (IKE) failed an assertion in the error
    answer."""
    ours, _ = arena.child_spis
    for protocol in (ProtocolId.NONE, ProtocolId.IKE):
        rekey = NotifyPayload(NotifyType.REKEY_SA, b"", protocol, ours)
        payloads = [rekey, *child_payloads(arena, fixed(protocol))]
        yield arena.sealed("cve", "cve_2023_38710", ExchangeType.CREATE_CHILD_SA, payloads)


def cve_2023_23009_malformed_ts(arena: Arena) -> Case:
    """Libreswan: a malformed TS payload in CREATE_CHILD_SA was freed twice."""
    selector = encode_body(TsiPayload((TrafficSelector.from_network(LEFT_NET),)))[4:]
    bodies = (
        b"\x02\0\0\0" + selector,  # two announced, one present
        b"\x01\0\0\0" + selector[:2] + b"\0\0" + selector[4:],  # selector length 0
        b"\x01\0\0\0\x09" + selector[1:],  # unknown TS type
        b"\x01\0\0\0" + selector[:2] + b"\0\x28" + selector[4:],  # IPv4 claiming 40 octets
        b"\0\0\0\0",  # no selectors
    )
    for body in bodies:
        payloads = child_payloads(arena, fixed(11))
        payloads[3] = UnknownPayload(PayloadType.TSI, False, body)
        yield arena.sealed("cve", "cve_2023_23009", ExchangeType.CREATE_CHILD_SA, payloads)


def invalid_ke_then_no_ke(arena: Arena) -> Case:
    """A CREATE_CHILD_SA whose KE the target refuses with INVALID_KE_PAYLOAD, then the retry
    without any KE (for a CHILD SA, then for an IKE SA rekey)."""
    ch = fixed(12)
    proposal = esp_proposal(ch.bytes(4))
    both = Proposal(
        1,
        ProtocolId.ESP,
        proposal.spi,
        (Transform.make(TransformType.DH, DhId.ECP_256),) + proposal.transforms,
    )
    payloads = child_payloads(arena, ch)
    payloads[0], payloads[2] = SaPayload((both,)), KePayload(DhId.ECP_256, ch.bytes(64))
    yield arena.sealed("cve", "invalid_ke", ExchangeType.CREATE_CHILD_SA, payloads)
    del payloads[2]
    yield arena.sealed("cve", "invalid_ke", ExchangeType.CREATE_CHILD_SA, payloads)
    rekey = [SaPayload((ike_proposal(ch.bytes(8)),)), NoncePayload(ch.bytes(32))]
    yield arena.sealed("cve", "invalid_ke", ExchangeType.CREATE_CHILD_SA, rekey)


def qcd_token_from_flipped_flag(arena: Arena) -> Case:
    """Not a CVE: the honest peer answers a request for its own IKE SA, sent with the I flag
    flipped, as if the SA were unknown, with its QCD token (RFC 6290); that token then makes
    a forged INVALID_IKE_SPI report to the target believable."""
    honest, now = arena.peer.manager, arena.clock.now
    flipped = Message(arena.spi_i, arena.spi_r, ExchangeType.INFORMATIONAL, FLAG_INITIATOR, 0)
    honest.receive_datagram(encode_message(flipped), ATTACKER, LEFT, now)
    reports = [decode_message(d.data) for d in honest.datagrams_to_send(now)]
    token = next(
        (
            n.data
            for r in reports
            for n in r.get(NotifyPayload)
            if n.type == NotifyType.QUICK_CRASH_DETECTION
        ),
        bytes(32),
    )
    report = Message(
        arena.spi_i,
        arena.spi_r,
        ExchangeType.INFORMATIONAL,
        FLAG_INITIATOR | FLAG_RESPONSE,
        arena.inflight[1] if arena.inflight else 0,
        (
            NotifyPayload(NotifyType.INVALID_IKE_SPI),
            NotifyPayload(NotifyType.QUICK_CRASH_DETECTION, token),
        ),
    )
    yield Hostile(encode_message(report), "cve", "qcd_token_from_flipped_flag")


def forged_ike_sa_init_response(arena: Arena) -> Case:
    """Found by this harness: an unencrypted response typed IKE_SA_INIT, carrying only an
    error notify, with the message ID of the target's request in flight (here a liveness
    probe to its silent peer) is taken as the answer: a forged sign of life."""
    arena.clock.now += TARGET_LIVENESS.dpd_delay + 1
    yield Hostile(b"", "cve", "forged_ike_sa_init_response")  # time passes: a probe goes out
    mid = arena.inflight[1] if arena.inflight else 0
    forged = Message(
        arena.spi_i,
        arena.spi_r,
        ExchangeType.IKE_SA_INIT,
        FLAG_INITIATOR | FLAG_RESPONSE,
        mid,
        (NotifyPayload(NotifyType.CHILD_SA_NOT_FOUND),),
    )
    yield Hostile(encode_message(forged), "cve", "forged_ike_sa_init_response")


def inverted_traffic_selector(arena: Arena) -> Case:
    """Found by this harness: a CREATE_CHILD_SA whose TSr range ends before it starts."""
    payloads = child_payloads(arena, fixed(13))
    good = TrafficSelector.from_network(RIGHT_NET)
    payloads[4] = TsrPayload((TrafficSelector(good.end, good.start),))
    yield arena.sealed("cve", "inverted_traffic_selector", ExchangeType.CREATE_CHILD_SA, payloads)


CASES = (
    cve_2014_9221_ke_group_1025,
    cve_2008_4551_ke_all_zeroes,
    cve_2015_3240_bad_dh_value,
    cve_2023_41913_oversized_ke,
    cve_2016_5391_proposal_without_dh,
    cve_2016_3071_aes_xcbc,
    cve_2018_10811_prf_hmac_md5,
    cve_2013_6467_missing_payloads,
    cve_2013_4564_short_datagrams,
    cve_2015_3991_ikev1_payload_types,
    cve_2026_12413_fragment_with_unknown_payloads,
    cve_2009_1957_create_child_sa_after_bad_init,
    cve_2019_12312_informational_instead_of_ike_auth,
    cve_2014_2338_rekey_before_auth,
    cve_2009_1958_ike_auth_without_ts,
    cve_2013_6075_crafted_identity,
    cve_2010_2628_long_identity,
    cve_2021_41991_many_certificates,
    cve_2023_38710_rekey_sa_invalid_protocol,
    cve_2023_23009_malformed_ts,
    invalid_ke_then_no_ke,
    qcd_token_from_flipped_flag,
    forged_ike_sa_init_response,
    inverted_traffic_selector,
)
