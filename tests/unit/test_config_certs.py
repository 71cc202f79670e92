"""``auth = "pubkey"`` in the configuration: certificates, CAs, CRLs and private keys read
from files, and check-config's findings, each naming the file and the key path."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from ikepulse.config.loader import ConfigError, parse_config
from ikepulse.core.ikev1.signature_auth import auth_method
from ikepulse.testing import pki
from ikepulse.wire.enums import IdType
from ikepulse.wire.isakmp_enums import AuthMethodV1

TOML = """
[connections.gw]
local_addrs = ["198.51.100.1"]
remote_addrs = ["198.51.100.2"]
local = {{ auth = "{auth}", {local_id}certs = ["{cert}"] }}
remote = {{ auth = "pubkey", id = "C=CH, O=test, CN=right", cacerts = ["{ca}"]{remote_extra} }}

[secrets.left-key]
private_key = "{key}"
"""


@pytest.fixture(scope="module")
def root():
    return pki.ca("C=CH, O=test, CN=Root CA", "ecdsa256")


def write(tmp_path, root, *, kind="rsa2048", auth="pubkey", local_id='id = "left.example", ',
          remote_extra="", key_form="pem", leaf=None):  # fmt: skip
    leaf = leaf or root.issue("C=CH, O=test, CN=left", pki.new_key(kind), san=["left.example"])
    (tmp_path / "left.pem").write_bytes(leaf.pem)
    (tmp_path / "ca.pem").write_bytes(root.pem)
    if key_form == "pem":
        (tmp_path / "left.key").write_bytes(leaf.key_pem)
    else:
        fmt = serialization.PrivateFormat
        form = fmt.TraditionalOpenSSL if kind.startswith("rsa") else fmt.PKCS8
        der = leaf.key.private_bytes(serialization.Encoding.DER, form, serialization.NoEncryption())
        (tmp_path / "left.key").write_bytes(der)
    return TOML.format(
        auth=auth,
        local_id=local_id,
        cert=tmp_path / "left.pem",
        ca=tmp_path / "ca.pem",
        key=tmp_path / "left.key",
        remote_extra=remote_extra,
    )


@pytest.mark.parametrize(
    "kind, form", [("rsa2048", "der"), ("ecdsa384", "pem"), ("ed25519", "der")]
)
def test_pubkey_connection_loads(tmp_path, root, kind, form):
    settings = parse_config(write(tmp_path, root, kind=kind, key_form=form), "gw.toml")
    (conn,) = settings.connections
    assert conn.local_pubkey.certs[0].subject.rfc4514_string() == "CN=left,O=test,C=CH"
    assert conn.remote_trust.cacerts == (root.cert,)
    assert conn.local_id.id_type == IdType.ID_FQDN
    assert not conn.local_pubkey.pss and conn.psk == b""


def test_local_id_defaults_to_the_certificate_subject(tmp_path, root):
    (conn,) = parse_config(write(tmp_path, root, local_id=""), "gw.toml").connections
    assert conn.local_id.id_type == IdType.ID_DER_ASN1_DN
    assert str(conn.local_id) == "C=CH, O=test, CN=left"


def test_rsa_pss_auth(tmp_path, root):
    (conn,) = parse_config(write(tmp_path, root, auth="rsa/pss"), "gw.toml").connections
    assert conn.local_pubkey.pss


def test_key_that_matches_no_certificate_is_named(tmp_path, root):
    text = write(tmp_path, root)
    (tmp_path / "left.key").write_bytes(pki.Issued(root.cert, pki.new_key("rsa2048")).key_pem)
    with pytest.raises(ConfigError) as info:
        parse_config(text, "gw.toml")
    assert f"gw.toml: connections.gw.local.certs[0]: {tmp_path / 'left.pem'}: no [secrets]" in str(
        info.value
    )


def test_unreadable_and_malformed_files_are_named(tmp_path, root):
    text = write(tmp_path, root)
    (tmp_path / "ca.pem").write_bytes(b"not a certificate")
    with pytest.raises(
        ConfigError, match=r"connections.gw.remote.cacerts\[0\]: .*ca.pem: not a PEM"
    ):
        parse_config(text, "gw.toml")
    (tmp_path / "ca.pem").write_bytes(root.pem)
    (tmp_path / "left.key").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"secrets.left-key.private_key: .*left.key: not a PEM"):
        parse_config(text, "gw.toml")
    (tmp_path / "left.pem").unlink()
    with pytest.raises(ConfigError, match=r"local.certs\[0\]: cannot read .*left.pem"):
        parse_config(text, "gw.toml")


def test_local_id_not_in_certificate_is_an_error(tmp_path, root):
    text = write(tmp_path, root, local_id='id = "someone.example", ')
    with pytest.raises(ConfigError, match="local.id: someone.example is not in .*left.pem"):
        parse_config(text, "gw.toml")


def test_crls_and_revocation(tmp_path, root):
    (tmp_path / "ca.crl").write_bytes(pki.crl(root).public_bytes(serialization.Encoding.DER))
    extra = f', crls = ["{tmp_path / "ca.crl"}"], revocation = "strict"'
    (conn,) = parse_config(write(tmp_path, root, remote_extra=extra), "gw.toml").connections
    assert len(conn.remote_trust.crls) == 1 and conn.remote_trust.revocation.value == "strict"


def test_certs_on_the_wrong_side_is_an_error(tmp_path, root):
    text = write(tmp_path, root).replace("cacerts = [", 'certs = ["x"], cacerts = [')
    with pytest.raises(ConfigError, match="remote.certs: not used on the remote side"):
        parse_config(text, "gw.toml")


def test_check_config_finds_an_expired_certificate(tmp_path, root):
    old = root.issue("C=CH, O=test, CN=left", pki.new_key("ecdsa256"), san=["left.example"],
                     not_after=pki.NOW - dt.timedelta(days=1))  # fmt: skip
    text = write(tmp_path, root, leaf=old)
    parse_config(text, "gw.toml")  # the daemon loads it (and the peer will refuse it)
    with pytest.raises(
        ConfigError, match=r"connections.gw.local.certs\[0\]: .*left.pem: .*expired"
    ):
        parse_config(text, "gw.toml", check_at=pki.NOW)


def test_check_config_finds_a_certificate_no_configured_ca_issued(tmp_path, root):
    other = pki.ca("C=CH, O=other, CN=Other CA")
    leaf = other.issue("C=CH, O=test, CN=left", pki.new_key("ecdsa256"), san=["left.example"])
    text = write(tmp_path, root, leaf=leaf)
    with pytest.raises(ConfigError, match=r"local.certs\[0\]: .*not a trusted CA"):
        parse_config(text, "gw.toml", check_at=pki.NOW)
    parse_config(write(tmp_path, root), "gw.toml", check_at=pki.NOW)  # a good one passes


def _ikev1(text: str) -> str:
    return text.replace("[connections.gw]\n", "[connections.gw]\nversion = 1\n")


@pytest.mark.parametrize(
    "kind, method",
    [("rsa2048", AuthMethodV1.RSA_SIG), ("ecdsa256", AuthMethodV1.ECDSA_256),
     ("ecdsa384", AuthMethodV1.ECDSA_384), ("ecdsa521", AuthMethodV1.ECDSA_521)],
)  # fmt: skip
def test_ikev1_certificates_pick_the_method_of_the_key(tmp_path, root, kind, method):
    (conn,) = parse_config(_ikev1(write(tmp_path, root, kind=kind)), "gw.toml").connections
    assert auth_method(conn) is method


def test_ikev1_cannot_sign_with_ed25519(tmp_path, root):
    with pytest.raises(ConfigError, match="local.certs: IKEv1 cannot sign with the ed25519 key"):
        parse_config(_ikev1(write(tmp_path, root, kind="ed25519")), "gw.toml")


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('remote = { auth = "pubkey"', 'remote = { auth = "psk"', "both be psk or both public-key"),
        ('local = { auth = "pubkey"', 'local = { auth = "rsa/pss"', "PKCS#1 v1.5 or ECDSA only"),
    ],
)
def test_ikev1_authentication_limits(tmp_path, root, old, new, expected):
    text = _ikev1(write(tmp_path, root)).replace(old, new)
    with pytest.raises(ConfigError, match=expected):
        parse_config(text, "gw.toml")
