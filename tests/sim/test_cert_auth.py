"""Two in-memory ikepulse peers authenticate with X.509 certificates (RFC 7296 §2.15,
RFC 7427), and refuse peers whose certificate or identity does not check out.

left (initiator)                                      right (responder)
IKE_SA_INIT  HDR, SAi1, KEi, Ni, N(NATD), N(SIG_HASH) -->
             <-- HDR, SAr1, KEr, Nr, N(NATD), N(SIG_HASH), CERTREQ
IKE_AUTH     HDR, SK {IDi, CERT+, N(IC), CERTREQ, IDr, AUTH(14), SAi2, TSi, TSr} -->
             <-- HDR, SK {IDr, CERT+, AUTH(14), SAr2, TSi, TSr}
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from ikepulse.core.connection import LocalPubkey
from ikepulse.core.events import ChildSaInstalled, IkeSaEstablished, IkeSaFailed
from ikepulse.core.sa_manager import SaManager
from ikepulse.core.state import IkeState
from ikepulse.core.status import ike_sa_status
from ikepulse.crypto.certs import Revocation, Trust
from ikepulse.testing import pki
from ikepulse.testing.loopback import (
    LEFT,
    LEFT_NET,
    RIGHT,
    RIGHT_NET,
    Clock,
    Peer,
    connection,
    run_until_idle,
)
from ikepulse.wire.enums import NotifyType

LEFT_DN, RIGHT_DN = "C=CH, O=test, CN=left.example", "C=CH, O=test, CN=right.example"


@pytest.fixture(scope="module")
def root():
    return pki.ca("C=CH, O=test, CN=Root CA", "ecdsa256")


def credentials(ca: pki.Issued, dn: str, kind: str, san: str | None = None, **kw):
    issued = ca.issue(dn, pki.new_key(kind.removesuffix("-pss")), san=[san] if san else [], **kw)
    return LocalPubkey((issued.cert,), issued.key, kind.endswith("-pss"))


def peers(left_cred, right_cred, cas, *, left_ids=(LEFT_DN, RIGHT_DN),
          right_ids=(RIGHT_DN, LEFT_DN),
          at: dt.datetime = pki.NOW, crls=(), revocation=Revocation.RELAXED):  # fmt: skip
    clock = Clock()
    trust = Trust(tuple(c.cert for c in cas), tuple(crls), revocation)
    offset = at.timestamp() - clock.now
    left = connection(*left_ids, LEFT_NET, RIGHT_NET, local_pubkey=left_cred, remote_trust=trust)
    right = connection(*right_ids, RIGHT_NET, LEFT_NET, local_pubkey=right_cred, remote_trust=trust)
    a = Peer(SaManager([left], random.Random(1), wall_offset=offset), LEFT)
    b = Peer(SaManager([right], random.Random(2), wall_offset=offset), RIGHT)
    return a, b, clock


def run(a, b, clock):
    sa = a.manager.initiate("site", LEFT, RIGHT, clock.now)
    run_until_idle(a, b, clock, until=clock.now + 30)
    return sa


@pytest.mark.parametrize("kind", pki.KEY_TYPES)
def test_certificates_of_each_key_type_establish(root, kind):
    a, b, clock = peers(credentials(root, LEFT_DN, kind), credentials(root, RIGHT_DN, kind), [root])
    sa = run(a, b, clock)
    assert sa.state is IkeState.ESTABLISHED
    assert a.of(IkeSaEstablished) and b.of(IkeSaEstablished)
    assert a.of(ChildSaInstalled) and b.of(ChildSaInstalled)
    status = ike_sa_status(sa, 0.0)
    assert status["remote_id"] == RIGHT_DN
    assert status["peer_certificate"]["subject"] == RIGHT_DN
    (right_sa,) = b.manager.sas.values()
    assert ike_sa_status(right_sa, 0.0)["peer_certificate"]["subject"] == LEFT_DN


def test_status_text_shows_the_peer_certificate(root):
    from ikepulse.cli.status import format_status

    a, b, clock = peers(credentials(root, LEFT_DN, "ecdsa256"),
                        credentials(root, RIGHT_DN, "ecdsa256"), [root])  # fmt: skip
    sa = run(a, b, clock)
    text = format_status([ike_sa_status(sa, 0.0)])
    expiry = (pki.NOW + dt.timedelta(days=365)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"peer certificate '{RIGHT_DN}', expires {expiry} UTC" in text


def test_three_level_chain_sends_the_intermediate(root):
    mid = root.issue("C=CH, O=test, CN=Intermediate", pki.new_key("ecdsa256"), ca=True)
    left = mid.issue(LEFT_DN, pki.new_key("ecdsa384"))
    cred = LocalPubkey((left.cert, mid.cert), left.key, False)
    a, b, clock = peers(cred, credentials(root, RIGHT_DN, "rsa2048"), [root])
    assert run(a, b, clock).state is IkeState.ESTABLISHED


def test_fqdn_identity_from_the_subject_alt_name(root):
    a, b, clock = peers(
        credentials(root, LEFT_DN, "ecdsa256", san="left.example"),
        credentials(root, RIGHT_DN, "ecdsa256", san="right.example"),
        [root],
        left_ids=("left.example", "right.example"),
        right_ids=("right.example", "left.example"),
    )
    assert run(a, b, clock).state is IkeState.ESTABLISHED


def test_dn_pattern_accepts_any_matching_peer(root):
    a, b, clock = peers(
        credentials(root, LEFT_DN, "ed25519"),
        credentials(root, RIGHT_DN, "ed25519"),
        [root],
        right_ids=(RIGHT_DN, "C=CH, O=test, CN=*"),
    )
    assert run(a, b, clock).state is IkeState.ESTABLISHED


def test_certificate_one_way_psk_the_other(root):
    """left signs with its certificate; right authenticates with the PSK (swanctl allows
    a different auth per side)."""
    clock = Clock()
    offset = pki.NOW.timestamp() - clock.now
    trust = Trust((root.cert,), (), Revocation.RELAXED)
    left = connection(LEFT_DN, "right.example", LEFT_NET, RIGHT_NET,
                      local_pubkey=credentials(root, LEFT_DN, "ecdsa256"))  # fmt: skip
    right = connection("right.example", LEFT_DN, RIGHT_NET, LEFT_NET, remote_trust=trust)
    a = Peer(SaManager([left], random.Random(1), wall_offset=offset), LEFT)
    b = Peer(SaManager([right], random.Random(2), wall_offset=offset), RIGHT)
    assert run(a, b, clock).state is IkeState.ESTABLISHED


def _refused(a, b, clock, reason: str) -> None:
    sa = run(a, b, clock)
    assert sa.state is not IkeState.ESTABLISHED
    failures = a.of(IkeSaFailed) + b.of(IkeSaFailed)
    assert failures, "nobody failed"
    assert any(f.notify == NotifyType.AUTHENTICATION_FAILED for f in failures)
    assert any(reason in f.reason for f in failures), [f.reason for f in failures]
    assert not a.of(ChildSaInstalled)  # (a responder that authenticated already installed)


def test_untrusted_ca_refused(root):
    other = pki.ca("C=CH, O=other, CN=Other CA", "ecdsa256")
    a, b, clock = peers(credentials(other, LEFT_DN, "ecdsa256"),
                        credentials(root, RIGHT_DN, "ecdsa256"), [root])  # fmt: skip
    _refused(a, b, clock, "issuer is not a trusted CA")


def test_expired_certificate_refused_by_the_wall_clock(root):
    a, b, clock = peers(credentials(root, LEFT_DN, "rsa2048"),
                        credentials(root, RIGHT_DN, "rsa2048"), [root],
                        at=pki.NOW + dt.timedelta(days=400))  # fmt: skip
    _refused(a, b, clock, "expired")


def test_not_yet_valid_certificate_refused(root):
    a, b, clock = peers(credentials(root, LEFT_DN, "ed25519"),
                        credentials(root, RIGHT_DN, "ed25519"), [root],
                        at=pki.NOW - dt.timedelta(days=60))  # fmt: skip
    _refused(a, b, clock, "not valid before")


def test_revoked_certificate_refused(root):
    left = credentials(root, LEFT_DN, "ecdsa256")
    crl = pki.crl(root, revoked=(left.certs[0].serial_number,))
    a, b, clock = peers(left, credentials(root, RIGHT_DN, "ecdsa256"), [root], crls=[crl])
    _refused(a, b, clock, "revoked")


def test_id_not_in_certificate_refused(root):
    """left claims an FQDN its certificate does not carry."""
    a, b, clock = peers(
        credentials(root, LEFT_DN, "ecdsa256"),
        credentials(root, RIGHT_DN, "ecdsa256"),
        [root],
        left_ids=("left.example", RIGHT_DN),
        right_ids=(RIGHT_DN, "left.example"),
    )
    _refused(a, b, clock, "is not an identity of its certificate")


def test_peer_claiming_anothers_dn_refused(root):
    """mallory holds a valid certificate from the same CA and claims left's DN."""
    a, b, clock = peers(
        credentials(root, "C=CH, O=test, CN=mallory", "ecdsa256"),
        credentials(root, RIGHT_DN, "ecdsa256"),
        [root],
    )
    _refused(a, b, clock, "is not an identity of its certificate")


def test_wrong_configured_remote_id_refused(root):
    a, b, clock = peers(
        credentials(root, LEFT_DN, "ecdsa256"),
        credentials(root, RIGHT_DN, "ecdsa256"),
        [root],
        left_ids=(LEFT_DN, "C=CH, O=test, CN=someone else"),
    )
    sa = run(a, b, clock)
    assert sa.state is not IkeState.ESTABLISHED
    assert any(
        f.notify == NotifyType.AUTHENTICATION_FAILED for f in a.of(IkeSaFailed) + b.of(IkeSaFailed)
    )


def test_bad_signature_refused(root):
    """right's AUTH signed with a key that is not its certificate's."""
    good = credentials(root, RIGHT_DN, "ecdsa256")
    forged = LocalPubkey(good.certs, pki.new_key("ecdsa256"), False)
    a, b, clock = peers(credentials(root, LEFT_DN, "ecdsa256"), forged, [root])
    _refused(a, b, clock, "does not verify")
    assert any("does not verify" in f.reason for f in a.of(IkeSaFailed))
