"""EAP-MSCHAPv2 road warriors and wildcard identities against strongSwan (its eap-identity
and eap-mschapv2 plugins), both roles, pinging through each tunnel.

lsite 203.0.113.2 -- left 198.51.100.1 (ikepulse) == IKE/ESP == right 198.51.100.2
(strongSwan) -- rsite 203.0.113.66

    client                                 gateway
    IKE_AUTH  IDi SA TSi TSr           ->
              <-  IDr AUTH(PSK) EAP(Identity)
    EAP rounds (Identity, MSCHAPv2 Challenge/Response/Success, Success)
    AUTH(MSK)                          ->
              <-  AUTH(MSK) SA TSi TSr
"""

from __future__ import annotations

import subprocess

import pytest

from ikepulse.testing.lab import LEFT_NET, RIGHT_NET, wait_for
from ikepulse.testing.lab_pki import install_for_charon

pytestmark = pytest.mark.lab

GATEWAY_KEY = "gateway-key-0123456789"
GATEWAY_BY_PSK = "      auth = psk\n      id = left.example"
PASSWORD = "carol's password"


def ping(ns, address: str) -> subprocess.CompletedProcess:
    return ns.run("ping", "-c", "3", "-i", "0.2", "-W", "1", address, check=False)


def pings_both_ways(lab) -> None:
    assert ping(lab.left_site, "203.0.113.66").returncode == 0
    assert ping(lab.right_site, "203.0.113.2").returncode == 0


def ikepulse_gateway(lab, remote: str, secrets: str):
    """ikepulse on the left as the road warriors' gateway (no remote_addrs)."""
    daemon = lab.ikepulse(lab.left)
    daemon.start(f"""
[connections.rw]
local_addrs = ["{lab.left_addr}"]
local = {{ auth = "psk", id = "left.example" }}
remote = {remote}
[connections.rw.children.lan]
local_ts = ["{LEFT_NET}"]
remote_ts = ["{RIGHT_NET}"]
{secrets}
""")
    return daemon


def strongswan_client(lab, local: str, secrets: str, remote: str = GATEWAY_BY_PSK, cas=()):
    """strongSwan on the right as a road warrior of the ikepulse gateway (``remote``: how
    it authenticates the gateway, ``cas``: the CA files it trusts for that)."""
    charon = lab.charon(lab.right)
    if cas:
        install_for_charon(charon.workdir, [], list(cas))
    charon.start(f"""connections {{
  lab {{
    version = 2
    local_addrs = {lab.right_addr}
    remote_addrs = {lab.left_addr}
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    local {{
{local}
    }}
    remote {{
{remote}
    }}
    children {{
      lan {{
        local_ts = {RIGHT_NET}
        remote_ts = {LEFT_NET}
        esp_proposals = aes256gcm16
      }}
    }}
  }}
}}
secrets {{
{secrets}
}}
""")
    return charon


EAP_GATEWAY = (
    '{ auth = "eap-mschapv2", id = "%any", eap_id = "%any" }',
    f"""
[secrets.gateway]
ids = ["left.example"]
secret = "{GATEWAY_KEY}"
[secrets.eap-carol]
id = "carol"
secret = "{PASSWORD}"
""",
)


def eap_client_secrets(password: str) -> str:
    return f"""  ike-gw {{
    id = left.example
    secret = {GATEWAY_KEY}
  }}
  eap-carol {{
    id = carol
    secret = "{password}"
  }}"""


EAP_CLIENT_LOCAL = """      auth = eap-mschapv2
      id = right.example
      eap_id = carol"""


def test_strongswan_client_ikepulse_gateway(lab):
    daemon = ikepulse_gateway(lab, *EAP_GATEWAY)
    charon = strongswan_client(lab, EAP_CLIENT_LOCAL, eap_client_secrets(PASSWORD))
    charon.swanctl("--initiate", "--child", "lan", timeout=30)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the CHILD SA")
    (ours,) = daemon.status()
    assert ours["connection"] == "rw" and ours["remote_id"] == "right.example"
    assert "EAP-MSCHAPv2 user carol authenticated" in daemon.log.read_text()
    assert "EAP method EAP_MSCHAPV2 succeeded, MSK established" in charon.log.read_text()
    pings_both_ways(lab)


def test_strongswan_client_wrong_password_refused(lab):
    daemon = ikepulse_gateway(lab, *EAP_GATEWAY)
    charon = strongswan_client(lab, EAP_CLIENT_LOCAL, eap_client_secrets("not the password"))
    out = charon.swanctl("--initiate", "--child", "lan", check=False, timeout=30)
    assert "failed" in out.lower()
    log = daemon.log.read_text()
    assert "EAP-MSCHAPv2: wrong password for user carol" in log
    assert "AUTHENTICATION_FAILED" in log
    assert "Traceback" not in log
    wait_for(lambda: daemon.status() == [] and charon.list_sas() == [], 5, "no SAs left")


def strongswan_gateway(lab):
    """strongSwan on the right as an EAP-MSCHAPv2 gateway with a PSK of its own."""
    charon = lab.charon(lab.right)
    charon.start(f"""connections {{
  rw {{
    version = 2
    local_addrs = {lab.right_addr}
    proposals = aes256gcm16-prfsha256-x25519
    mobike = no
    local {{
      auth = psk
      id = right.example
    }}
    remote {{
      auth = eap-mschapv2
      id = %any
      eap_id = %any
    }}
    children {{
      lan {{
        local_ts = {RIGHT_NET}
        remote_ts = {LEFT_NET}
        esp_proposals = aes256gcm16
      }}
    }}
  }}
}}
secrets {{
  ike-gw {{
    id = right.example
    secret = {GATEWAY_KEY}
  }}
  eap-carol {{
    id = carol
    secret = "{PASSWORD}"
  }}
}}
""")
    return charon


def ikepulse_client(lab, password: str):
    daemon = lab.ikepulse(lab.left)
    daemon.start(f"""
[connections.lab]
local_addrs = ["{lab.left_addr}"]
remote_addrs = ["{lab.right_addr}"]
local = {{ auth = "eap-mschapv2", id = "left.example", eap_id = "carol" }}
remote = {{ auth = "psk", id = "right.example" }}
[connections.lab.children.lan]
local_ts = ["{LEFT_NET}"]
remote_ts = ["{RIGHT_NET}"]
[secrets.gateway]
ids = ["right.example"]
secret = "{GATEWAY_KEY}"
[secrets.eap-carol]
id = "carol"
secret = "{password}"
""")
    return daemon


def test_ikepulse_client_strongswan_gateway(lab):
    charon = strongswan_gateway(lab)
    daemon = ikepulse_client(lab, PASSWORD)
    daemon.cli("up", "lab")
    (ours,) = daemon.status()
    (theirs,) = charon.list_sas()
    assert ours["spi_i"] == theirs["initiator-spi"] and theirs["state"] == "ESTABLISHED"
    assert theirs["remote-eap-id"] == "carol"
    pings_both_ways(lab)


def test_ikepulse_client_wrong_password_refused(lab):
    charon = strongswan_gateway(lab)
    daemon = ikepulse_client(lab, "not the password")
    result = daemon.cli("up", "lab", check=False)
    assert result.returncode != 0
    assert "AUTHENTICATION_FAILED" in result.stderr or "refused" in result.stderr
    log = daemon.log.read_text()
    assert "EAP-MSCHAPv2 refused by the gateway" in log and "Traceback" not in log
    assert "EAP-MS-CHAPv2 verification failed" in charon.log.read_text()
    wait_for(lambda: daemon.status() == [] and charon.list_sas() == [], 10, "no SAs left")


def test_any_identity_psk_road_warrior_with_a_group_key(lab):
    daemon = ikepulse_gateway(
        lab,
        '{ auth = "psk", id = "%any" }',
        f'[secrets.group]\nids = ["left.example"]\nsecret = "{GATEWAY_KEY}"\n',
    )
    charon = strongswan_client(
        lab,
        "      auth = psk\n      id = roadwarrior.example",
        f"  ike-gw {{\n    id = left.example\n    secret = {GATEWAY_KEY}\n  }}",
    )
    charon.swanctl("--initiate", "--child", "lan", timeout=30)
    wait_for(lambda: daemon.status() and daemon.status()[0]["children"], 10, "the CHILD SA")
    assert daemon.status()[0]["remote_id"] == "roadwarrior.example"
    pings_both_ways(lab)
