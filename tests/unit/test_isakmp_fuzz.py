"""Codec-level IKEv1 fuzz: mutations and named regression cases raise only DecodeError."""

from __future__ import annotations

import itertools
import json

import pytest

from ikepulse.testing.fuzz_v1 import (
    ECHO_RCOOKIE,
    v1_mutations,
    v1_regression_cases,
    v1_samples,
)
from ikepulse.wire.buffer import DecodeError
from ikepulse.wire.describe import describe_isakmp, describe_payload_v1
from ikepulse.wire.isakmp import decode_chain, decode_isakmp
from ikepulse.wire.isakmp_enums import ExchangeV1, IdV1, NotifyV1, PayloadV1
from ikepulse.wire.isakmp_payloads import DeleteV1, FragmentV1, IdV1Payload, NotifyV1Payload

CASES = v1_regression_cases()
CVES = {
    "libreswan_cve_2023_38711",
    "libreswan_cve_2023_38712",
    "libreswan_cve_2023_30570",
    "libreswan_cve_2022_23094",
    "libreswan_cve_2020_1763",
    "libreswan_cve_2019_10155",
    "libreswan_cve_2016_5361",
    "libreswan_cve_2015_3204",
    "libreswan_cve_2024_3652",
    "strongswan_cve_2013_6076",
    "strongswan_cve_2009_0790",
}


def _decode_everything(data: bytes) -> str:
    """Decode like the SA manager will: the datagram, then an encrypted body as if it had
    been decrypted. Returns what happened; anything but DecodeError propagates."""
    try:
        msg = decode_isakmp(data)
    except DecodeError:
        return "rejected"
    json.dumps(describe_isakmp(msg))  # what ``ikepulse decode`` prints must not fail either
    if msg.chain is None:
        try:
            chain = decode_chain(msg.first_payload, msg.encrypted, padding=True)
        except DecodeError:
            return "body rejected"
        json.dumps([describe_payload_v1(p) for p in chain.payloads])
        return "body decoded"
    return "decoded"


def test_samples_are_well_formed():
    samples = v1_samples()
    assert {"main1", "main3", "main5", "quick1", "informational"} <= set(samples)
    for data in samples.values():
        assert _decode_everything(data) != "rejected"


def test_mutations_are_deterministic_and_varied():
    first = list(itertools.islice(v1_mutations(7, 200), 200))
    assert first == list(v1_mutations(7, 200))
    assert first != list(v1_mutations(8, 200))
    assert len(set(first)) > 150


def test_20000_mutations_raise_nothing_but_decode_error():
    outcomes: dict[str, int] = {}
    for data in v1_mutations(seed=1, count=20_000):
        result = _decode_everything(data)
        outcomes[result] = outcomes.get(result, 0) + 1
    # the mutations reach every path: header rejection, chain rejection and success
    assert set(outcomes) == {"rejected", "decoded", "body decoded", "body rejected"}
    assert outcomes["decoded"] > 2_000 and outcomes["rejected"] > 2_000


def test_every_named_cve_has_a_case():
    assert {name for name, _ in CASES} == CVES
    assert all(datagrams for _, datagrams in CASES)


@pytest.mark.parametrize(("name", "datagrams"), CASES, ids=[name for name, _ in CASES])
def test_regression_case_raises_nothing_but_decode_error(name, datagrams):
    for data in datagrams:
        _decode_everything(data)


def _case(name: str) -> list[bytes]:
    return dict(CASES)[name]


def _chain_payloads(data: bytes):
    msg = decode_isakmp(data)
    if msg.chain is not None:
        return msg.payloads
    return decode_chain(msg.first_payload, msg.encrypted, padding=True).payloads


def test_cases_carry_their_trigger_structure():
    # CVE-2023-38711: Quick Mode whose IDcr is an FQDN; clear and E-flagged shapes agree
    clear, sealed = _case("libreswan_cve_2023_38711")
    assert decode_isakmp(clear).exchange == ExchangeV1.QUICK and decode_isakmp(sealed).is_encrypted
    ids = [p for p in _chain_payloads(sealed) if isinstance(p, IdV1Payload)]
    assert ids[-1].id_type == IdV1.FQDN and _chain_payloads(clear) == _chain_payloads(sealed)
    # CVE-2023-38712: two Deletes of the ISAKMP SA, then a notify on it
    kinds = [type(p) for p in _chain_payloads(_case("libreswan_cve_2023_38712")[0])]
    assert kinds.count(DeleteV1) == 2 and kinds[-1] is NotifyV1Payload
    # CVE-2023-30570: later packets reuse the responder cookie
    assert [d[8:16] == ECHO_RCOOKIE for d in _case("libreswan_cve_2023_30570")] == [
        False,
        True,
        True,
    ]
    # CVE-2013-6076: fragments with ID 0
    frags = [decode_isakmp(d).payloads[0] for d in _case("strongswan_cve_2013_6076")]
    assert all(isinstance(f, FragmentV1) for f in frags) and frags[0].fragment_id == 0
    # CVE-2009-0790: DPD notifies
    notes = [p for d in _case("strongswan_cve_2009_0790") for p in _chain_payloads(d)]
    kinds = {p.type for p in notes if isinstance(p, NotifyV1Payload)}
    assert kinds == {NotifyV1.R_U_THERE, NotifyV1.R_U_THERE_ACK}
    # CVE-2015-3204: payload type 15 survives as an unknown payload
    mm3 = decode_isakmp(_case("libreswan_cve_2015_3204")[1])
    assert any(getattr(p, "type", None) == 15 for p in mm3.payloads)
    assert PayloadV1(15).name == "UNKNOWN_15"
