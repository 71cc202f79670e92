"""TOML configuration: the documented example, and errors that name file, key and problem."""

from __future__ import annotations

import pytest

from ikepulse.config.loader import ConfigError, load_config, parse_config
from ikepulse.config.proposals import parse_esp_proposal, parse_ike_proposal
from ikepulse.config.schema import parse_duration
from ikepulse.core.connection import CloseAction, Identity, Mode, StartAction
from ikepulse.core.fragments import Fragmentation

EXAMPLE = """
[daemon]
control_socket = "/run/ikepulse/control.sock"

[connections.site-b]
version = 2
local_addrs = ["198.51.100.1"]
remote_addrs = ["198.51.100.2"]
proposals = ["aes256gcm16-prfsha256-x25519"]
start_action = "start"          # none | trap | start
local = { auth = "psk", id = "left.example" }
remote = { auth = "psk", id = "right.example" }

[connections.site-b.children.lan]
local_ts = ["203.0.113.0/26"]
remote_ts = ["203.0.113.64/26"]
esp_proposals = ["aes256gcm16"]
mode = "tunnel"

[secrets.site-b]
ids = ["left.example", "right.example"]
secret = "0123456789abcdef"     # or secret_file = "/path"
"""


def test_the_documented_example():
    settings = parse_config(EXAMPLE, "ex.toml")
    assert settings.daemon.control_socket == "/run/ikepulse/control.sock"
    assert settings.daemon.listen == ("198.51.100.1",)
    (c,) = settings.connections
    assert c.name == "site-b"
    assert c.local_addrs == ("198.51.100.1",) and c.remote_addrs == ("198.51.100.2",)
    assert c.proposals == (parse_ike_proposal("aes256gcm16-prfsha256-x25519"),)
    assert c.start_action is StartAction.START
    assert (c.local_id, c.remote_id) == (
        Identity.parse("left.example"),
        Identity.parse("right.example"),
    )
    assert c.psk == b"0123456789abcdef"
    (child,) = c.children
    assert child.name == "lan" and child.mode is Mode.TUNNEL
    assert [str(t) for t in child.local_ts] == ["203.0.113.0/26"]
    assert [str(t) for t in child.remote_ts] == ["203.0.113.64/26"]
    assert child.esp_proposals == (parse_esp_proposal("aes256gcm16"),)


def test_secret_never_shown():
    settings = parse_config(EXAMPLE, "ex.toml")
    assert "0123456789abcdef" not in repr(settings)
    broken = EXAMPLE.replace('proposals = ["aes256gcm16-prfsha256-x25519"]', "proposals = 5")
    with pytest.raises(ConfigError) as info:
        parse_config(broken, "ex.toml")
    assert "0123456789abcdef" not in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("[daemon]", "[daemon]\nbogus = 1", "ex.toml: daemon.bogus: unknown key"),
        ("version = 2", "version = 2\nfoo = 1", "ex.toml: connections.site-b.foo: unknown key"),
        (
            'mode = "tunnel"',
            'mode = "tunnel"\nbar = 1',
            "ex.toml: connections.site-b.children.lan.bar: unknown key",
        ),
        (
            "aes256gcm16-prfsha256-x25519",
            "aes257-sha256-modp2048",
            "ex.toml: connections.site-b.proposals[0]: unknown algorithm 'aes257' in proposal "
            "'aes257-sha256-modp2048'",
        ),
        (
            'local_ts = ["203.0.113.0/26"]',
            'local_ts = ["203.0.113.0/33"]',
            "ex.toml: connections.site-b.children.lan.local_ts[0]: '203.0.113.0/33' is not a "
            "subnet",
        ),
        ('mode = "tunnel"', 'mode = "beet"', "connections.site-b.children.lan.mode"),
        (
            'mode = "tunnel"',
            'mode = "tunnel"\nclose_action = "restart"',
            "connections.site-b.children.lan.close_action",
        ),
        (
            'proposals = ["aes256gcm16-prfsha256-x25519"]',
            'proposals = "aes256gcm16"',
            "ex.toml: connections.site-b.proposals: Input should be a valid list",
        ),
        ("version = 2", "version = 3", "version must be 1, 2 or 0 (either), not 3"),
        ("version = 2", "version = 2\naggressive = true", "aggressive = true needs IKEv1"),
        (
            'local = { auth = "psk"',
            'local = { auth = "pubkey"',
            'local.certs: needed with auth = "pubkey"',
        ),
        ('local = { auth = "psk"', 'local = { auth = "xauth"', "auth = 'xauth' is not supported"),
        (
            "version = 2",
            'version = 2\nretransmit_timeout = "fast"',
            "connections.site-b.retransmit_timeout: 'fast' is not a duration",
        ),
        (
            'ids = ["left.example", "right.example"]',
            'ids = ["someone.else"]',
            "ex.toml: connections.site-b: no [secrets] entry matches ids left.example",
        ),
        (
            'secret = "0123456789abcdef"',
            'secret = "x"\nsecret_file = "/nonexistent"',
            "secrets.site-b: set exactly one of secret and secret_file",
        ),
        ("[daemon]", "[daemon", "ex.toml: TOML syntax"),
        (
            'mode = "tunnel"',
            'mode = "tunnel"\nrekey_bytes = "10 MB"',
            "connections.site-b.children.lan.rekey_bytes: '10 MB' is not a count",
        ),
        (
            'mode = "tunnel"',
            'mode = "tunnel"\nrekey_time = "1h"\nlife_time = "30m"',
            "connections.site-b.children.lan: life_time (1800) must be greater than "
            "rekey_time (3600), or the CHILD SA expires before it is rekeyed",
        ),
        (
            'mode = "tunnel"',
            'mode = "tunnel"\nrekey_packets = 1000\nrand_packets = 1000',
            "connections.site-b.children.lan: rand_packets (1000) must be less than "
            "rekey_packets (1000)",
        ),
    ],
)
def test_errors_name_file_key_and_problem(old, new, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(EXAMPLE.replace(old, new, 1), "ex.toml")
    assert expected in str(info.value)


def test_secret_file(tmp_path):
    (tmp_path / "psk").write_text("from-a-file\n")
    text = EXAMPLE.replace('secret = "0123456789abcdef"', f'secret_file = "{tmp_path / "psk"}"')
    (tmp_path / "c.toml").write_text(text)
    (c,) = load_config(tmp_path / "c.toml").connections
    assert c.psk == b"from-a-file"


def test_unreadable_secret_file_is_named():
    text = EXAMPLE.replace('secret = "0123456789abcdef"', 'secret_file = "/nonexistent/psk"')
    with pytest.raises(ConfigError, match="secret_file: cannot read /nonexistent/psk"):
        parse_config(text, "ex.toml")


def test_missing_file():
    with pytest.raises(ConfigError, match="/nonexistent.toml: cannot read"):
        load_config("/nonexistent.toml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2),
        ("500ms", 0.5),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        (30, 30),
        ("1.5s", 1.5),
        ("10", 10),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["-1s", "2 weeks", "s", -3, True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_check_config_cli(tmp_path):
    from click.testing import CliRunner

    from ikepulse.cli.main import main

    good = tmp_path / "good.toml"
    good.write_text(EXAMPLE)
    result = CliRunner().invoke(main, ["check-config", str(good)])
    assert result.exit_code == 0 and "OK" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.replace("version = 2", "version = 2\nfoo = 1"))
    result = CliRunner().invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {bad}: connections.site-b.foo: unknown key"


def test_child_lifetimes_by_time_bytes_and_packets():
    text = EXAMPLE.replace(
        'mode = "tunnel"',
        'mode = "tunnel"\nrekey_time = "10m"\nrekey_bytes = "10M"\nlife_bytes = 20000000\n'
        'rekey_packets = "1k"\nrand_packets = 0',
    )
    (child,) = parse_config(text, "ex.toml").connections[0].children
    assert child.time_limits(0.0) == (600, pytest.approx(660))
    assert child.time_limits(1.0) == (pytest.approx(540), pytest.approx(660))
    # the default rand_bytes, life - rekey = 9.5 MB, is capped at half of rekey_bytes
    assert child.byte_limits(1.0) == (10 * 2**20 / 2, 20_000_000)
    assert child.packet_limits(1.0) == (1024, pytest.approx(1126.4))


@pytest.mark.parametrize("action", ["none", "trap", "start"])
def test_close_action_per_child_defaults_to_none(action):
    (child,) = parse_config(EXAMPLE, "ex.toml").connections[0].children
    assert child.close_action is CloseAction.NONE
    text = EXAMPLE.replace('mode = "tunnel"', f'mode = "tunnel"\nclose_action = "{action}"')
    (child,) = parse_config(text, "ex.toml").connections[0].children
    assert child.close_action is CloseAction(action)


def test_default_rand_time_is_at_most_half_the_rekey_interval():
    text = EXAMPLE.replace('mode = "tunnel"', 'mode = "tunnel"\nrekey_time = 60\nlife_time = "1h"')
    (child,) = parse_config(text, "ex.toml").connections[0].children
    assert child.time_limits(1.0) == (30, 3600)


@pytest.mark.parametrize("mode", ["yes", "accept", "force", "no"])
def test_fragmentation_per_connection_defaults_to_yes_and_1280(mode):
    (c,) = parse_config(EXAMPLE, "ex.toml").connections
    assert (c.fragmentation.mode, c.fragmentation.size) == (Fragmentation.YES, 1280)
    text = EXAMPLE.replace(
        "version = 2", f'version = 2\nfragmentation = "{mode}"\nfragment_size = 576'
    )
    (c,) = parse_config(text, "ex.toml").connections
    assert (c.fragmentation.mode, c.fragmentation.size) == (Fragmentation(mode), 576)
    assert c.fragmentation.announced is (mode != "no")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('fragmentation = "maybe"', "connections.site-b.fragmentation: Input should be 'yes'"),
        ("fragment_size = 100", "connections.site-b.fragment_size: Input should be greater"),
        ("fragment_size = 70000", "connections.site-b.fragment_size: Input should be less"),
    ],
)
def test_bad_fragmentation_settings_are_named(line, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(EXAMPLE.replace("version = 2", f"version = 2\n{line}"), "ex.toml")
    assert expected in str(info.value)


def test_check_config_warns_about_aggressive_mode_with_a_psk(tmp_path):
    from click.testing import CliRunner

    from ikepulse.cli.main import main

    path = tmp_path / "v1.toml"
    path.write_text(EXAMPLE.replace("version = 2", "version = 1\naggressive = true"))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0
    assert "warning: connections.site-b: Aggressive Mode with a pre-shared key" in result.output
    path.write_text(EXAMPLE.replace("version = 2", "version = 1"))
    assert "warning" not in CliRunner().invoke(main, ["check-config", str(path)]).output


def test_ikev1_refuses_eap():
    text = EXAMPLE.replace("version = 2", "version = 1").replace(
        'remote = { auth = "psk"', 'remote = { auth = "eap-mschapv2"'
    )
    with pytest.raises(ConfigError, match="EAP needs IKEv2"):
        parse_config(text, "ex.toml")
