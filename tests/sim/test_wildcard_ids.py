"""Wildcard identities on a responder (swanctl.conf ``remote.id``): the connection whose
pattern fits the initiator's IDi best serves it — an exact identity, then the ``*`` pattern
with the most literal characters, then ``%any`` — and PSK secrets found by identity, a
group key listing only the gateway's ID included.

client                                    gateway (rw-exact, rw-glob, rw-any)
IKE_AUTH  IDi=<who> AUTH(PSK) SA TSi TSr -->   picks the connection for IDi
          <-- IDr AUTH SA TSi TSr
"""

from __future__ import annotations

import random

import pytest

from ikepulse.config.loader import parse_config
from ikepulse.core.connection import MATCH_NONE, MATCH_PERFECT, Identity, identity_match
from ikepulse.core.events import IkeSaEstablished, IkeSaFailed
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.testing.loopback import LEFT, RIGHT, Clock, Peer, run_until_idle
from ikepulse.wire.enums import NotifyType

GATEWAY = """
[connections.rw-any]
local = { id = "gw.example" }
remote = { id = "%any" }
[connections.rw-any.children.net]
local_ts = ["203.0.113.0/26"]
[connections.rw-glob]
local = { id = "gw.example" }
remote = { id = "*@example.com" }
[connections.rw-glob.children.net]
local_ts = ["203.0.113.0/26"]
[connections.rw-exact]
local = { id = "gw.example" }
remote = { id = "carol@example.com" }
[connections.rw-exact.children.net]
local_ts = ["203.0.113.0/26"]
[connections.rw-hosts]
local = { id = "gw.example" }
remote = { id = "*.hosts.example" }
[connections.rw-hosts.children.net]
local_ts = ["203.0.113.0/26"]
[secrets.group]
ids = ["gw.example"]
secret = "the group key 0123"
[secrets.carol]
ids = ["gw.example", "carol@example.com"]
secret = "carol's own key 0123"
"""

CLIENT = """
[connections.site]
local = {{ id = "{me}" }}
remote = {{ id = "gw.example" }}
[connections.site.children.net]
remote_ts = ["203.0.113.0/26"]
[secrets.mine]
secret = "{secret}"
"""


def connect(me: str, secret: str):
    client = parse_config(CLIENT.format(me=me, secret=secret)).connections
    a = Peer(SaManager(list(client), random.Random(1)), LEFT)
    b = Peer(SaManager(list(parse_config(GATEWAY).connections), random.Random(2)), RIGHT)
    clock = Clock()
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 60)
    return a, b, sa


@pytest.mark.parametrize(
    "me, secret, chosen",
    [
        ("carol@example.com", "carol's own key 0123", "rw-exact"),
        ("dave@example.com", "the group key 0123", "rw-glob"),
        ("DAVE@Example.COM", "the group key 0123", "rw-glob"),
        ("laptop.hosts.example", "the group key 0123", "rw-hosts"),
        ("198.51.100.1", "the group key 0123", "rw-any"),
        ("someone.else", "the group key 0123", "rw-any"),
    ],
)
def test_the_most_specific_remote_id_serves_the_peer(me, secret, chosen):
    a, b, sa = connect(me, secret)
    assert sa.state is IkeState.ESTABLISHED
    assert [e.connection for e in b.of(IkeSaEstablished)] == [chosen]
    assert str(b.manager.find(chosen)[0].remote_identity) == me


def test_a_per_peer_secret_outranks_the_group_key():
    a, b, sa = connect("carol@example.com", "the group key 0123")
    (failed,) = b.of(IkeSaFailed)
    assert "PSK AUTH of carol@example.com does not verify" in failed.reason
    assert failed.notify == NotifyType.AUTHENTICATION_FAILED
    assert sa.state is IkeState.FAILED


def test_a_wrong_group_key_is_refused():
    a, b, sa = connect("dave@example.com", "not the group key")
    (failed,) = b.of(IkeSaFailed)
    assert "PSK AUTH of dave@example.com does not verify" in failed.reason


def test_identity_match_ranks():
    carol = Identity.parse("carol@example.com")
    assert identity_match(None, carol) == 1
    assert identity_match(carol, carol) == MATCH_PERFECT
    short = identity_match(Identity.parse("*.com"), Identity.parse("a.example.com"))
    longer = identity_match(Identity.parse("*.example.com"), Identity.parse("a.example.com"))
    assert MATCH_PERFECT > longer > short > 1
    assert identity_match(Identity.parse("*@example.com"), carol) > 1
    assert identity_match(Identity.parse("*.example.com"), carol) == MATCH_NONE  # FQDN vs RFC822
    assert identity_match(Identity.parse("*@example.com"), Identity.parse("c@example.org")) == 0
    assert identity_match(Identity.parse("*.example.com"), Identity.parse("example.com")) == 0
    assert identity_match(Identity.parse("a.example.com"), Identity.parse("b.example.com")) == 0
