"""The fuzz harness as a safety net: hostile datagrams into the responder of an established
in-memory IKE SA (ikepulse.testing.fuzz), seeded, so every run feeds the same inputs.

hostile --x--> target (right, responder)  <-- honest peer (left) answers its requests
                 |
                 +-- after each datagram: nothing escaped; an unauthenticated one left every
                     ESTABLISHED SA as it was; after an authenticated one the SA still
                     answers a liveness check
"""

from __future__ import annotations

import random

import pytest

from ikepulse.testing.fuzz import FAMILIES, Fuzzer, RandomChoices, Report, describe
from ikepulse.testing.fuzz_cves import CASES
from ikepulse.testing.fuzz_inputs import one_input

SEED = 7
INPUTS = 3000


@pytest.fixture(scope="module")
def mixed() -> Report:
    fuzzer = Fuzzer(SEED)
    choices = RandomChoices(random.Random(SEED))
    for _ in range(INPUTS):
        fuzzer.step(one_input, choices)
    return fuzzer.report


def first(report: Report, kind: str) -> str:
    return next((describe(f) for f in report.failures if f.kind == kind), "")


def test_every_family_is_fed(mixed):
    assert mixed.inputs == INPUTS
    assert set(mixed.per_family) == set(FAMILIES)
    assert min(mixed.per_family[family] for family in FAMILIES) > INPUTS / 20


def test_sealed_input_reaches_the_tasks(mixed):
    """Most sealed requests are answered: their keys and message IDs are right."""
    assert mixed.answered > mixed.per_family["authenticated"] / 2


def test_no_exception_escapes(mixed):
    assert mixed.exceptions == 0, first(mixed, "exception")


def test_unauthenticated_input_leaves_established_sas_alone(mixed):
    assert mixed.violations == 0, first(mixed, "violation")


def test_sa_answers_after_authenticated_input(mixed):
    assert mixed.unanswered == 0, first(mixed, "unanswered")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_named_case_leaves_the_sa_up(case):
    fuzzer = Fuzzer(SEED)
    fuzzer.step(lambda arena, _: case(arena), RandomChoices(random.Random(SEED)))
    report = fuzzer.report
    assert report.exceptions == report.violations == report.unanswered == 0, describe(
        report.failures[0]
    )
    assert fuzzer.arena.established
    assert report.per_family["cve"] > 0
