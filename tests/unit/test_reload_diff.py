"""A reload compares connections by name, then by value (``swanctl --load-all``)."""

from __future__ import annotations

import dataclasses

from ikepulse.config.loader import parse_config
from ikepulse.core.connection import Updown
from ikepulse.core.reload import diff_connections

CONFIG = """
[connections.{a}]
remote_addrs = ["198.51.100.2"]
local = {{ id = "left.example" }}
remote = {{ id = "right.example" }}
dpd_delay = "{dpd}"
[connections.{a}.children.lan]
local_ts = ["203.0.113.0/26"]
remote_ts = ["203.0.113.64/26"]
{updown}

[connections.keep]
remote_addrs = ["198.51.100.3"]
local = {{ id = "left.example" }}
remote = {{ id = "other.example" }}
[connections.keep.children.lan]
local_ts = ["203.0.113.0/26"]
remote_ts = ["203.0.113.128/26"]

[secrets.psk]
secret = "{secret}"
"""


def load(a="site", dpd="10s", updown="", secret="0123456789abcdef"):
    text = CONFIG.format(a=a, dpd=dpd, updown=updown, secret=secret)
    return parse_config(text, "reload.toml").connections


def test_same_file_twice_changes_nothing():
    diff = diff_connections(load(), load())
    assert (diff.added, diff.removed, diff.changed) == ((), (), ())
    assert diff.unchanged == ("site", "keep")
    assert diff.summary() == "no change"


def test_added_removed_changed_and_unchanged():
    diff = diff_connections(load(a="site"), load(a="branch"))
    assert diff.added == ("branch",)
    assert diff.removed == ("site",)
    assert diff.replaced == ("site",)
    assert diff.unchanged == ("keep",)
    diff = diff_connections(load(dpd="10s"), load(dpd="20s"))
    assert diff.changed == ("site",) and diff.unchanged == ("keep",)
    assert diff.summary() == "changed site"


def test_a_new_secret_changes_every_connection_using_it():
    diff = diff_connections(load(), load(secret="another secret, longer"))
    assert diff.changed == ("site", "keep")


def test_a_new_updown_command_does_not_replace_the_tunnel():
    old, new = load(), load(updown='updown = "/bin/true"\nupdown_events = true')
    assert diff_connections(old, new).changed == ()
    child = new[0].child("lan")
    assert child.updown == Updown("/bin/true", events=True, timeout=10.0)


def test_connections_are_compared_by_value_not_identity():
    old = load()
    copy = [dataclasses.replace(c) for c in old]
    assert diff_connections(old, copy).unchanged == ("site", "keep")
