"""AUTH payload computation for shared keys (RFC 7296 §2.15)."""

from __future__ import annotations

from .prf import Prf

KEY_PAD = b"Key Pad for IKEv2"
"""The 17 ASCII octets, no terminator, that §2.15 mixes into the shared secret."""


def signed_octets(
    message: bytes, peer_nonce: bytes, prf: Prf, sk_p: bytes, id_body: bytes
) -> bytes:
    """InitiatorSignedOctets / ResponderSignedOctets (§2.15).

    = our whole first message (IKE_SA_INIT request for the initiator, response for the
    responder) | the peer's nonce data | prf(SK_px, IDx'). ``id_body`` is IDx': the ID
    payload body (ID type, three reserved octets, identification data) without the
    generic payload header. ``sk_p`` is SK_pi for the initiator, SK_pr for the responder.
    """
    return message + peer_nonce + prf(sk_p, id_body)


def psk_auth(prf: Prf, secret: bytes, signed_octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (§2.15)."""
    return prf(prf(secret, KEY_PAD), signed_octets)
