"""Which tasks make each exchange, for both roles (RFC 7296 §1.2-§1.4, DESIGN.md §3.3).

The only module that imports the task modules. ``request`` builds our side of an exchange;
``classify`` decides, in one place, which responder tasks handle a new request.

    purpose             exchange          tasks
    IKE_SA_INIT         IKE_SA_INIT       IkeInit, NatDetection, FragmentationSupport,
                                          SignatureInit
    IKE_AUTH            IKE_AUTH          IkeAuth, MobikeSupport, IkeAuthChild (with a CHILD SA)
    CREATE_CHILD        CREATE_CHILD_SA   CreateChildSa
    REKEY_CHILD         CREATE_CHILD_SA   CreateChildSa (N(REKEY_SA))
    REKEY_IKE           CREATE_CHILD_SA   IkeRekey (an IKE proposal)
    DELETE_IKE          INFORMATIONAL     IkeDelete (Delete protocol IKE)
    DELETE_CHILD        INFORMATIONAL     ChildDelete (Delete protocol ESP)
    LIVENESS_CHECK      INFORMATIONAL     LivenessCheck, Mobike (no Delete; MOBIKE notifies too)
    INVALID_SPI_REPORT  INFORMATIONAL     InvalidSpiReport
    MOBIKE_UPDATE       INFORMATIONAL     Mobike (UPDATE_SA_ADDRESSES, COOKIE2, NAT-D)
    MOBIKE_ADDRESSES    INFORMATIONAL     Mobike (our address list)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.enums import ExchangeType, NotifyType, ProtocolId
from ..wire.payloads import DeletePayload, SaPayload
from .errors import InvalidSyntax, NoAdditionalSas
from .state import IkeState
from .task import Inbound, Purpose, Request, Task
from .tasks.create_child_sa import CreateChildSa
from .tasks.fragmentation import FragmentationSupport
from .tasks.ike_auth import IkeAuth
from .tasks.ike_auth_child import IkeAuthChild
from .tasks.ike_init import IkeInit
from .tasks.ike_rekey import IkeRekey
from .tasks.informational import ChildDelete, IkeDelete, InvalidSpiReport, LivenessCheck
from .tasks.mobike import Kind, Mobike, MobikeSupport
from .tasks.natd import NatDetection
from .tasks.signature_init import SignatureInit

if TYPE_CHECKING:
    from .hosts import TaskHost

EXCHANGES: dict[Purpose, tuple[ExchangeType, tuple[type[Task], ...]]] = {
    Purpose.IKE_SA_INIT: (
        ExchangeType.IKE_SA_INIT,
        (IkeInit, NatDetection, FragmentationSupport, SignatureInit),
    ),
    Purpose.IKE_AUTH: (ExchangeType.IKE_AUTH, (IkeAuth, MobikeSupport, IkeAuthChild)),
    Purpose.CREATE_CHILD: (ExchangeType.CREATE_CHILD_SA, (CreateChildSa,)),
    Purpose.REKEY_CHILD: (ExchangeType.CREATE_CHILD_SA, (CreateChildSa,)),
    Purpose.REKEY_IKE: (ExchangeType.CREATE_CHILD_SA, (IkeRekey,)),
    Purpose.DELETE_IKE: (ExchangeType.INFORMATIONAL, (IkeDelete,)),
    Purpose.DELETE_CHILD: (ExchangeType.INFORMATIONAL, (ChildDelete,)),
    Purpose.LIVENESS_CHECK: (ExchangeType.INFORMATIONAL, (LivenessCheck, Mobike)),
    Purpose.INVALID_SPI_REPORT: (ExchangeType.INFORMATIONAL, (InvalidSpiReport,)),
    Purpose.MOBIKE_UPDATE: (ExchangeType.INFORMATIONAL, (Mobike,)),
    Purpose.MOBIKE_ADDRESSES: (ExchangeType.INFORMATIONAL, (Mobike,)),
}
_KINDS = {Purpose.MOBIKE_UPDATE: Kind.UPDATE, Purpose.MOBIKE_ADDRESSES: Kind.ADDRESSES}


def request(purpose: Purpose, sa: TaskHost, *args) -> Request:
    """Our tasks for an exchange of ``purpose``. ``args`` go to its last task: the CHILD SA
    config of IKE_AUTH (left out without one), of CREATE_CHILD_SA (and the entry it rekeys),
    the SPIs to delete, the SPI to report."""
    exchange, classes = EXCHANGES[purpose]
    if purpose in _KINDS:
        args = (_KINDS[purpose], *args)
    *leading, last = classes
    tasks = [cls(sa, True) for cls in leading]
    if args or last is not IkeAuthChild:
        tasks.append(last(sa, True, *args))
    return Request(purpose, exchange, tasks)


def classify(sa: TaskHost, inbound: Inbound) -> list[Task]:
    """The responder tasks for a new request; raises NoAdditionalSas for an exchange we do
    not support, InvalidSyntax for IKE_AUTH once the IKE SA is up."""
    purpose = _purpose(inbound)
    classes = EXCHANGES[purpose][1]
    if purpose is Purpose.IKE_AUTH:
        if sa.state is not IkeState.CONNECTING:
            raise InvalidSyntax(f"IKE_AUTH request on an IKE SA that is {sa.state.value}")
        if inbound.first(SaPayload) is None:
            classes = classes[:-1]  # IKE_AUTH without a CHILD SA (§1.2 allows it)
    return [cls(sa, False) for cls in classes]


def _purpose(inbound: Inbound) -> Purpose:
    exchange = inbound.message.exchange
    if exchange == ExchangeType.IKE_SA_INIT:
        return Purpose.IKE_SA_INIT
    if exchange == ExchangeType.IKE_AUTH:
        return Purpose.IKE_AUTH
    if exchange == ExchangeType.INFORMATIONAL:
        deletes = inbound.all(DeletePayload)
        if any(d.protocol == ProtocolId.IKE for d in deletes):
            return Purpose.DELETE_IKE
        return Purpose.DELETE_CHILD if deletes else Purpose.LIVENESS_CHECK
    if exchange == ExchangeType.CREATE_CHILD_SA:
        proposals = inbound.first(SaPayload).proposals
        if any(p.protocol == ProtocolId.IKE for p in proposals):
            return Purpose.REKEY_IKE
        if inbound.notify(NotifyType.REKEY_SA) is not None:
            return Purpose.REKEY_CHILD
        return Purpose.CREATE_CHILD
    raise NoAdditionalSas(f"{exchange.name} is not supported")
