"""IKE_SA_INIT's part for certificates: SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) both ways,
and the responder's CERTREQ for the CAs it trusts (RFC 7296 §1.2, §3.7)."""

from __future__ import annotations

from ...wire.enums import NotifyType
from ...wire.payloads import Payload
from ...wire.sa import SaPayload
from ..pubkey_auth import certreq, hash_notify
from ..task import Inbound, Status, Task


class SignatureInit(Task):
    """Announce the hashes we verify; a responder names its CAs when it wants a certificate
    (a strongSwan initiator sends its certificate only when asked)."""

    def __init__(self, sa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.peer_announced = False

    def build(self, out: list[Payload]) -> None:
        if self.initiator or self.peer_announced:
            out.append(hash_notify())
        connection = self.sa.connection
        if not self.initiator and connection is not None and connection.remote_trust:
            out.append(certreq(connection.remote_trust))

    def process(self, msg: Inbound) -> Status:
        if self.initiator and msg.first(SaPayload) is None:
            retry = (NotifyType.COOKIE, NotifyType.INVALID_KE_PAYLOAD)
            if any(msg.notify(t) is not None for t in retry):
                return Status.NEED_MORE  # go again with IkeInit's next IKE_SA_INIT
        self.peer_announced = msg.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS) is not None
        return Status.DONE
