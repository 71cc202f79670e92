"""A knob is declared once (DESIGN.md §3.11): the schema holds its default, the core's value
types hold none, and the Python builders agree with what the loader makes of the same TOML."""

from __future__ import annotations

import dataclasses

import pytest

from ikepulse.config.build import (
    child_config,
    connection_config,
    liveness_policy,
    retransmit_policy,
)
from ikepulse.config.loader import parse_config
from ikepulse.core.connection import (
    ChildConfig,
    ConnectionConfig,
    Identity,
    Mode,
    RetransmitPolicy,
    Unique,
)
from ikepulse.core.liveness import DpdAction, LivenessPolicy

SECRET = '[secrets.any]\nsecret = "0123456789abcdef"\n'
NOT_KNOBS = {"restart_base", "restart_cap", "restart_jitter", "first_check_spread", "check_spread"}


def _load(child: str = "", **knobs: str) -> ConnectionConfig:
    """One connection with child ``lan``: only ``local.id`` and the ``knobs`` set."""
    site = "".join(f"{key} = {value}\n" for key, value in knobs.items())
    text = (
        f'[connections.site]\nlocal = {{ id = "left.example" }}\n{site}\n'
        f"[connections.site.children.lan]\n{child}\n\n{SECRET}"
    )
    (connection,) = parse_config(text, "bare.toml").connections
    return connection


def _built(**overrides) -> ConnectionConfig:
    return connection_config(
        "site",
        local_id=Identity.parse("left.example"),
        remote_id=None,
        psk=b"0123456789abcdef",
        **overrides,
    )


def test_builders_default_to_what_an_unset_section_loads():
    assert _load() == _built(children=(child_config("lan"),))


def test_builder_overrides_match_the_same_knobs_loaded():
    loaded = _load(
        'mode = "transport"\nrekey_time = "10m"\nrekey_packets = "1k"',
        dpd_delay='"10s"',
        dpd_action='"clear"',
        retransmit_tries="2",
        retransmit_jitter="50",
        unique='"replace"',
        encap="true",
        rekey_time='"1h"',
    )
    lan = child_config("lan", mode=Mode.TRANSPORT, rekey_time=600.0, rekey_packets=1024)
    assert loaded == _built(
        children=(lan,),
        liveness=liveness_policy(dpd_delay=10.0, dpd_action=DpdAction.CLEAR),
        retransmit=retransmit_policy(tries=2, jitter=0.5),
        unique=Unique.REPLACE,
        force_encap=True,
        rekey_time=3600.0,
    )


@pytest.mark.parametrize("name", ["trap", "hold"])
def test_dpd_action_trap_is_swanctls_name_for_hold(name):
    assert _load(dpd_action=f'"{name}"').liveness.dpd_action is DpdAction.HOLD


@pytest.mark.parametrize(
    "build",
    [
        lambda: liveness_policy(dpd_dealy=1),
        lambda: retransmit_policy(retries=1),
        lambda: child_config("lan", rekey=1),
        lambda: _built(dpd_delay=1),
    ],
)
def test_an_override_must_name_a_field(build):
    with pytest.raises(TypeError):
        build()


@pytest.mark.parametrize(
    "value_type", [ConnectionConfig, ChildConfig, RetransmitPolicy, LivenessPolicy]
)
def test_core_value_types_have_no_defaults_of_their_own(value_type):
    defaulted = {
        f.name
        for f in dataclasses.fields(value_type)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    assert defaulted <= NOT_KNOBS
