"""Configuration writers for the interop lab: swanctl.conf for strongSwan, TOML for ikepulse.

Both write one connection ``lab`` with one child ``lan`` between the two site networks, for
IKEv2 or (``version=1``) IKEv1 Main or Aggressive Mode (RFC 2409 §5). ``lab.py`` re-exports
everything here.
"""

from __future__ import annotations

PSK = "0123456789abcdef"
LEFT_NET, RIGHT_NET = "203.0.113.0/26", "203.0.113.64/26"

SIDES = {
    "left": ("left.example", "right.example", LEFT_NET, RIGHT_NET),
    "right": ("right.example", "left.example", RIGHT_NET, LEFT_NET),
}
"""Per gateway: own identity, peer identity, own site network, peer site network."""

AGGRESSIVE_PSK_RESPONDER = "i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
"""A ``charon { }`` setting (``Charon.start(charon_options=...)``): without it a strongSwan
responder refuses IKEv1 Aggressive Mode with a pre-shared key (its hash can be attacked
offline, RFC 2409 §5.4 sends it before any encryption)."""


def _side(side: str, local_id, remote_id, local_ts, remote_ts) -> tuple[str, str, str, str]:
    defaults = SIDES[side]
    given = (local_id, remote_id, local_ts, remote_ts)
    return tuple(g if g is not None else d for g, d in zip(given, defaults, strict=True))


def swanctl_conf(
    *,
    local_addr: str,
    remote_addr: str,
    side: str = "right",
    local_id: str | None = None,
    remote_id: str | None = None,
    local_ts: str | None = None,
    remote_ts: str | None = None,
    proposals: str = "aes256gcm16-prfsha256-x25519",
    esp_proposals: str = "aes256gcm16",
    secret: str = PSK,
    extra: str = "",
    child_extra: str = "",
    mobike: bool = False,
    version: int = 2,
    aggressive: bool = False,
    dpd_delay: str | None = None,
    dpd_timeout: str | None = None,
) -> str:
    """A swanctl.conf with one connection ``lab`` and one child ``lan`` (one key per line)
    for the gateway on ``side``; MOBIKE stays off unless asked for.

    ``version=1`` makes it IKEv1, ``aggressive`` asks for Aggressive Mode instead of Main
    Mode (a PSK responder also needs ``AGGRESSIVE_PSK_RESPONDER`` in its strongswan.conf).
    ``dpd_delay`` / ``dpd_timeout`` (e.g. ``"2s"``): strongSwan's DPD interval, and for IKEv1
    how long an unanswered R-U-THERE (RFC 3706) is waited for before the peer is dead.
    """
    local_id, remote_id, local_ts, remote_ts = _side(side, local_id, remote_id, local_ts, remote_ts)
    optional = "".join(
        f"    {key} = {value}\n"
        for key, value in (
            ("aggressive", "yes" if aggressive else None),
            ("dpd_delay", dpd_delay),
            ("dpd_timeout", dpd_timeout),
        )
        if value is not None
    )
    return f"""connections {{
  lab {{
    version = {version}
    local_addrs = {local_addr}
    remote_addrs = {remote_addr}
    proposals = {proposals}
    mobike = {"yes" if mobike else "no"}
{optional}    {extra}
    local {{
      auth = psk
      id = {local_id}
    }}
    remote {{
      auth = psk
      id = {remote_id}
    }}
    children {{
      lan {{
        local_ts = {local_ts}
        remote_ts = {remote_ts}
        esp_proposals = {esp_proposals}
        mode = tunnel
        {child_extra}
      }}
    }}
  }}
}}
secrets {{
  ike-lab {{
    id-1 = {local_id}
    id-2 = {remote_id}
    secret = {secret}
  }}
}}
"""


def _toml_list(text: str) -> str:
    """``"a,b"`` (swanctl's list syntax) as a TOML array."""
    return "[" + ", ".join(f'"{item.strip()}"' for item in text.split(",")) + "]"


def ikepulse_conf(
    *,
    local_addr: str,
    remote_addr: str,
    side: str = "left",
    local_id: str | None = None,
    remote_id: str | None = None,
    local_ts: str | None = None,
    remote_ts: str | None = None,
    proposals: str = "aes256gcm16-prfsha256-x25519",
    esp_proposals: str = "aes256gcm16",
    secret: str = PSK,
    start_action: str = "none",
    mode: str = "tunnel",
    extra: str = "",
    version: int = 2,
    aggressive: bool = False,
) -> str:
    """ikepulse's TOML for the gateway on ``side``: connection ``lab``, child ``lan``
    (``version=1``: IKEv1, ``aggressive``: Aggressive Mode rather than Main Mode)."""
    local_id, remote_id, local_ts, remote_ts = _side(side, local_id, remote_id, local_ts, remote_ts)
    aggressive_line = "aggressive = true\n" if aggressive else ""
    return f"""
[connections.lab]
version = {version}
local_addrs = ["{local_addr}"]
remote_addrs = ["{remote_addr}"]
proposals = ["{proposals}"]
start_action = "{start_action}"
{aggressive_line}local = {{ auth = "psk", id = "{local_id}" }}
remote = {{ auth = "psk", id = "{remote_id}" }}
{extra}

[connections.lab.children.lan]
local_ts = {_toml_list(local_ts)}
remote_ts = {_toml_list(remote_ts)}
esp_proposals = ["{esp_proposals}"]
mode = "{mode}"

[secrets.lab]
ids = ["{local_id}", "{remote_id}"]
secret = "{secret}"
"""
