"""Shared fixtures. Lab tests need root and strongSwan; with CI=true they never skip."""

from __future__ import annotations

import os

import pytest

from ikepulse.testing.lab import Lab, lab_unavailable


def _require_lab() -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"lab test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def lab(tmp_path):
    _require_lab()
    lab = Lab(tmp_path).up()
    yield lab
    lab.down()


@pytest.fixture
def nat_lab(tmp_path):
    _require_lab()
    lab = Lab(tmp_path, nat=True).up()
    yield lab
    lab.down()
