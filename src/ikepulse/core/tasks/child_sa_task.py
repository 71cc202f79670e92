"""What negotiating a CHILD SA takes, in IKE_AUTH or CREATE_CHILD_SA: proposals, traffic
selectors, mode, SPIs and keys (RFC 7296 §1.2, §1.3.1, §2.9, §2.17)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...crypto.cipher import cipher_for
from ...crypto.integ import integ_for
from ...crypto.keys import child_keymat, split_child_keys
from ...wire.enums import ExchangeType, NotifyType
from ...wire.payloads import NotifyPayload, Payload
from ...wire.sa import Proposal, SaPayload
from ...wire.traffic_selectors import TsiPayload, TsrPayload
from ..child_sa import ChildSa
from ..connection import ChildConfig, Mode
from ..errors import (
    IkeError,
    InvalidSyntax,
    NoProposalChosen,
    PeerReportedError,
    TsUnacceptable,
)
from ..events import ChildSaFailed
from ..negotiate import (
    Suite,
    accept_chosen,
    host_selector,
    is_subset,
    narrow_or_fail,
    select,
    to_wire,
)
from ..task import Inbound, Status, Task

if TYPE_CHECKING:
    from ..hosts import TaskHost

_CHILD_ERRORS = (
    NotifyType.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE,
    NotifyType.SINGLE_PAIR_REQUIRED,
    NotifyType.INTERNAL_ADDRESS_FAILURE,
    NotifyType.FAILED_CP_REQUIRED,
    NotifyType.NO_ADDITIONAL_SAS,
    NotifyType.CHILD_SA_NOT_FOUND,
    NotifyType.INVALID_KE_PAYLOAD,
    NotifyType.TEMPORARY_FAILURE,
)


class ChildSaTask(Task):
    """The CHILD SA part of an exchange; ``exchange`` and ``with_dh`` (whether ESP proposals
    carry a DH group, for PFS) come from the subclass."""

    exchange: ExchangeType
    with_dh: bool

    def __init__(self, sa: TaskHost, initiator: bool, config: ChildConfig | None = None) -> None:
        super().__init__(sa, initiator)
        self.config = config
        self.spi_in = b""
        self.proposal: Proposal | None = None
        self.suite: Suite | None = None
        self.mode = Mode.TUNNEL
        self.local_ts: tuple = ()
        self.remote_ts: tuple = ()
        self.child: ChildSa | None = None
        self.vnet = False
        """Both sides sent IKEPULSE_ESP_VNET (esp/vnet.py; tunnel mode only)."""

    def _selectors(self, config: ChildConfig) -> tuple[tuple, tuple]:
        local = config.local_ts or (host_selector(self.sa.local[0]),)
        remote = config.remote_ts or (host_selector(self.sa.remote[0]),)
        return local, remote

    def build(self, out: list[Payload]) -> None:
        if self.initiator:
            config = self.config
            self.spi_in = self.sa.manager.allocate_esp_spi()
            self.local_ts, self.remote_ts = self._selectors(config)
            if config.mode is Mode.TRANSPORT:
                out.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
            elif self.sa.manager.esp_vnet:
                out.append(NotifyPayload(NotifyType.IKEPULSE_ESP_VNET))
            out.append(SaPayload(to_wire(config.esp_proposals, self.spi_in, with_dh=self.with_dh)))
            self.build_exchange_payloads(out)
            out.append(TsiPayload(self.local_ts))
            out.append(TsrPayload(self.remote_ts))
            return
        if self.build_error(out):
            return
        if self.mode is Mode.TRANSPORT:
            out.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        if self.vnet:
            out.append(NotifyPayload(NotifyType.IKEPULSE_ESP_VNET))
        out.append(
            SaPayload(
                (
                    Proposal(
                        self.proposal.number,
                        self.proposal.protocol,
                        self.spi_in,
                        self.suite.transforms(),
                    ),
                )
            )
        )
        self.build_exchange_payloads(out)
        out.append(TsiPayload(self.remote_ts))
        out.append(TsrPayload(self.local_ts))

    def build_exchange_payloads(self, out: list[Payload]) -> None:
        """Nonce and KE of CREATE_CHILD_SA go between SA and TS; IKE_AUTH has none."""

    def candidates(self, msg: Inbound) -> tuple[ChildConfig, ...]:
        return self.sa.connection.children

    def process(self, msg: Inbound) -> Status:
        with self.contained():
            if self.initiator:
                self._process_response(msg)
            else:
                self._process_request(msg)
        return Status.DONE

    def _process_request(self, msg: Inbound) -> None:
        tsi, tsr = msg.first(TsiPayload), msg.first(TsrPayload)
        if tsi is None or tsr is None:
            raise TsUnacceptable("CHILD SA request without TSi/TSr")
        wants_transport = msg.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        error: IkeError = TsUnacceptable("connection has no children")
        for config in self.candidates(msg):
            local, remote = self._selectors(config)
            try:
                self.remote_ts = narrow_or_fail(tsi.selectors, remote, "TSi")
                self.local_ts = narrow_or_fail(tsr.selectors, local, "TSr")
                self.proposal, self.suite = select(
                    config.esp_proposals, msg.first(SaPayload).proposals, with_dh=self.with_dh
                )
            except (TsUnacceptable, NoProposalChosen) as exc:
                error = exc
                continue
            self.config = config
            self.mode = (
                Mode.TRANSPORT if wants_transport and config.mode is Mode.TRANSPORT else Mode.TUNNEL
            )
            self.vnet = self._vnet(msg)
            self.spi_in = self.sa.manager.allocate_esp_spi()
            self.key_exchange(msg)
            self._derive(self.proposal.spi)
            return
        raise error

    def key_exchange(self, msg: Inbound) -> None:
        """Nonces and the optional PFS exchange of CREATE_CHILD_SA; nothing in IKE_AUTH."""

    def keymat_inputs(self) -> tuple[bytes, bytes, bytes]:
        """(g^ir, Ni, Nr) for §2.17: IKE_AUTH uses the IKE SA's nonces, no new DH."""
        return b"", self.sa.sk.nonce_i, self.sa.sk.nonce_r

    def _process_response(self, msg: Inbound) -> None:
        for notify in msg.all(NotifyPayload):
            if notify.type in _CHILD_ERRORS:
                raise PeerReportedError(notify.type, "the CHILD SA")
        proposal, self.suite = (
            accept_chosen(
                self.config.esp_proposals, msg.first(SaPayload).proposals, with_dh=self.with_dh
            )
            if msg.first(SaPayload)
            else (None, None)
        )
        tsi, tsr = msg.first(TsiPayload), msg.first(TsrPayload)
        if proposal is None or tsi is None or tsr is None:
            raise InvalidSyntax(f"{self.exchange.name} response without SA, TSi or TSr")
        if not is_subset(tsi.selectors, self.local_ts) or not is_subset(
            tsr.selectors, self.remote_ts
        ):
            raise TsUnacceptable("responder widened the traffic selectors")
        self.local_ts, self.remote_ts = tsi.selectors, tsr.selectors
        transport = msg.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        self.mode = Mode.TRANSPORT if transport else Mode.TUNNEL
        self.vnet = self._vnet(msg)
        self.key_exchange(msg)
        self._derive(proposal.spi)

    def _vnet(self, msg: Inbound) -> bool:
        """Super-packets whole in ESP: we offer it, the peer did too, tunnel mode."""
        return (
            self.sa.manager.esp_vnet
            and self.mode is Mode.TUNNEL
            and msg.notify(NotifyType.IKEPULSE_ESP_VNET) is not None
        )

    def _derive(self, spi_out: bytes) -> None:
        if len(spi_out) != 4:
            raise InvalidSyntax(f"ESP SPI of {len(spi_out)} bytes")
        sa, suite = self.sa, self.suite
        encr_size = cipher_for(*suite.encr).key_size
        integ_size = integ_for(suite.integ).key_size if suite.integ else 0
        shared, nonce_i, nonce_r = self.keymat_inputs()
        keymat = child_keymat(
            sa.sk.prf, sa.sk.keys.sk_d, nonce_i, nonce_r, 2 * (encr_size + integ_size), shared
        )
        self.child = ChildSa(
            name=self.config.name,
            spi_in=self.spi_in,
            spi_out=spi_out,
            suite=suite,
            mode=self.mode,
            local_ts=self.local_ts,
            remote_ts=self.remote_ts,
            keys=split_child_keys(keymat, encr_size, integ_size),
            installed_at=0.0,
            vnet=self.vnet,
        )

    def finish(self, now: float) -> None:
        if self.child is not None and self.error is None:
            self.sa.children.install(self.child, now)
            return
        name = self.config.name if self.config else "?"
        error = self.error or NoProposalChosen("no acceptable CHILD SA")
        self.sa.emit(ChildSaFailed(self.sa.connection.name, name, error.reason, error.notify))
