"""Identity matching (RFC 7296 §2.15, §3.5): a configured identity against the one a peer
claims; DNs attribute by attribute with ``*`` RDN values as wildcards, others exactly.
"""

from __future__ import annotations

from ..crypto import der
from ..crypto.cert_ids import dn_matches, is_dn_pattern, rdns_of_der
from ..wire.enums import IdType
from .connection import Identity


def is_pattern(identity: Identity) -> bool:
    """A DN with ``*`` RDN values names many peers: never sent as IDr (§3.5)."""
    if identity.id_type != IdType.ID_DER_ASN1_DN:
        return False
    try:
        return is_dn_pattern(rdns_of_der(identity.data))
    except der.DerError:
        return False


def id_matches(wanted: Identity, claimed: Identity) -> bool:
    """Whether the identity a peer claims is the configured one (a DN may be a pattern)."""
    if wanted.id_type == claimed.id_type == IdType.ID_DER_ASN1_DN:
        try:
            return dn_matches(rdns_of_der(wanted.data), rdns_of_der(claimed.data))
        except der.DerError:
            return False
    return wanted == claimed
