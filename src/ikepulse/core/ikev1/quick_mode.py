"""Quick Mode: one pair of ESP SAs per exchange, with PFS when the ESP proposal carries a
group (RFC 2409 §5.5, RFC 2407 §4.6.2 identities as traffic selectors, RFC 3947 §5 modes).

    1  I->R  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
    2  R->I  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
    3  I->R  HDR*, HASH(3)

The initiator installs after message 2, the responder after message 3.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ...crypto.cipher import cipher_for
from ...crypto.dh import key_exchange_for
from ...crypto.errors import CryptoError
from ...crypto.ikev1 import keymat_v1, quick_hash1, quick_hash2, quick_hash3
from ...crypto.integ import integ_for
from ...crypto.keys import ChildKeys
from ...wire.isakmp import PayloadChain, encode_chain
from ...wire.isakmp_enums import EncapMode, IdV1, ProtocolV1
from ...wire.isakmp_payloads import HashV1Payload, IdV1Payload, KeV1, NonceV1
from ...wire.isakmp_sa import ProposalV1, SaV1
from ...wire.traffic_selectors import TrafficSelector
from ..child_sa import ChildSa
from ..children import LIVE, ChildEntry
from ..connection import ChildConfig, Mode
from ..errors import AuthenticationFailed, InvalidSyntax, NoProposalChosen, TsUnacceptable
from ..events import ChildSaFailed
from ..negotiate import host_selector, is_subset
from .proposals import UDP_MODES, EspChoice, esp_sa, select_esp

if TYPE_CHECKING:
    from ..hosts import IsakmpHost

NONCE_SIZE = 32


def id_of(ts: TrafficSelector) -> IdV1Payload:
    """A traffic selector as an ID payload: one address, a subnet or a range, one port."""
    if (ts.start_port, ts.end_port) == (0, 65535):
        port = 0
    elif ts.start_port == ts.end_port:
        port = ts.start_port
    else:
        raise TsUnacceptable(f"IKEv1 cannot express the port range of {ts}")
    v4 = ts.start.version == 4
    if ts.start == ts.end:
        kind, data = (IdV1.IPV4_ADDR if v4 else IdV1.IPV6_ADDR), ts.start.packed
    else:
        nets = list(ipaddress.summarize_address_range(ts.start, ts.end))
        if len(nets) == 1:
            net = nets[0]
            kind = IdV1.IPV4_ADDR_SUBNET if v4 else IdV1.IPV6_ADDR_SUBNET
            data = net.network_address.packed + net.netmask.packed
        else:
            kind = IdV1.IPV4_ADDR_RANGE if v4 else IdV1.IPV6_ADDR_RANGE
            data = ts.start.packed + ts.end.packed
    return IdV1Payload(kind, ts.protocol, port, data)


def ts_of(payload: IdV1Payload) -> TrafficSelector:
    """An ID payload of Quick Mode as a traffic selector (RFC 2407 §4.6.2.1)."""
    size = 4 if payload.id_type in (IdV1.IPV4_ADDR, IdV1.IPV4_ADDR_SUBNET,
                                    IdV1.IPV4_ADDR_RANGE) else 16  # fmt: skip
    data, kind = payload.data, payload.id_type
    try:
        if kind in (IdV1.IPV4_ADDR, IdV1.IPV6_ADDR) and len(data) == size:
            start = end = ipaddress.ip_address(data)
        elif kind in (IdV1.IPV4_ADDR_SUBNET, IdV1.IPV6_ADDR_SUBNET) and len(data) == 2 * size:
            mask = int.from_bytes(data[size:], "big")
            prefix = bin(mask).count("1")
            if mask != ((1 << 8 * size) - 1) ^ ((1 << 8 * size - prefix) - 1):
                raise ValueError("netmask with holes")
            net = ipaddress.ip_network((ipaddress.ip_address(data[:size]), prefix), strict=False)
            start, end = net.network_address, net.broadcast_address
        elif kind in (IdV1.IPV4_ADDR_RANGE, IdV1.IPV6_ADDR_RANGE) and len(data) == 2 * size:
            start, end = ipaddress.ip_address(data[:size]), ipaddress.ip_address(data[size:])
        else:
            raise ValueError(f"{kind.name} of {len(data)} bytes")
    except ValueError as exc:
        raise InvalidSyntax(f"Quick Mode ID payload: {exc}") from None
    if start > end:
        raise InvalidSyntax("Quick Mode ID range ends before it starts")
    ports = (payload.port, payload.port) if payload.port else (0, 65535)
    return TrafficSelector(start, end, payload.protocol, *ports)


class QuickMode:
    """One Quick Mode exchange; ``config`` given: we initiate it (``rekeys``: the entry it
    replaces)."""

    def __init__(
        self,
        sa: IsakmpHost,
        message_id: int,
        config: ChildConfig | None = None,
        rekeys: ChildEntry | None = None,
    ) -> None:
        self.sa = sa
        self.message_id = message_id
        self.initiator = config is not None
        self.config = config
        self.rekeys = rekeys
        self.expect = 2 if self.initiator else 1
        self.spi_in = b""
        self.ni = self.nr = b""
        self.ke = None
        self.g_qm = b""
        self.choice: EspChoice | None = None
        self.local_ts: TrafficSelector | None = None
        self.remote_ts: TrafficSelector | None = None
        self.child: ChildSa | None = None

    # --- helpers ---------------------------------------------------------------------------

    def _selectors(self, config: ChildConfig) -> tuple[TrafficSelector, TrafficSelector]:
        """IKEv1 carries one selector a side: the first configured (default the hosts)."""
        local = config.local_ts[0] if config.local_ts else host_selector(self.sa.local[0])
        remote = config.remote_ts[0] if config.remote_ts else host_selector(self.sa.remote[0])
        return local, remote

    def _mode(self, config: ChildConfig) -> EncapMode:
        transport = config.mode is Mode.TRANSPORT
        if self.sa.udp_encap:
            return EncapMode.UDP_TRANSPORT if transport else EncapMode.UDP_TUNNEL
        return EncapMode.TRANSPORT if transport else EncapMode.TUNNEL

    def _ids(self) -> list[IdV1Payload]:
        """IDci/IDcr: the initiator's selector first."""
        ours, theirs = id_of(self.local_ts), id_of(self.remote_ts)
        return [ours, theirs] if self.initiator else [theirs, ours]

    def _send(self, payloads: list, hashed, now: float, *, final: bool = False) -> None:
        _, after = encode_chain(payloads)
        digest = hashed(after)
        self.sa.send_quick(self.message_id, [HashV1Payload(digest), *payloads], now, final)

    def _check(self, chain: PayloadChain, expected) -> None:
        first = chain.payloads[0] if chain.payloads else None
        if not isinstance(first, HashV1Payload):  # unauthenticated: dropped, not refused
            raise AuthenticationFailed("Quick Mode message without HASH first")
        if first.data != expected(chain.after(0)):
            raise AuthenticationFailed("Quick Mode HASH does not verify")

    def _nonce(self, chain: PayloadChain) -> bytes:
        nonce = chain.first(NonceV1)
        if nonce is None or not 8 <= len(nonce.data) <= 256:
            raise InvalidSyntax("Quick Mode message without a valid nonce")
        return nonce.data

    def _pfs(self, chain: PayloadChain) -> None:
        group = self.choice.suite.dh
        ke = chain.first(KeV1)
        if group is None:
            return
        if ke is None:
            raise NoProposalChosen("PFS group chosen but no KE payload")
        if self.ke is None or self.ke.group != group:
            self.ke = key_exchange_for(group, self.sa.rng)
        try:
            self.g_qm = self.ke.shared_secret(ke.data)
        except CryptoError as exc:
            raise InvalidSyntax(f"Quick Mode KE payload: {exc}") from None

    def _derive(self, spi_out: bytes) -> None:
        """KEYMAT per direction, keyed by the receiving side's SPI (§5.5): initiator to
        responder under the responder's SPI."""
        if len(spi_out) != 4:
            raise InvalidSyntax(f"ESP SPI of {len(spi_out)} bytes")
        sa, suite = self.sa, self.choice.suite
        encr = cipher_for(*suite.encr).key_size
        integ = integ_for(suite.integ).key_size if suite.integ else 0
        spi_i, spi_r = (self.spi_in, spi_out) if self.initiator else (spi_out, self.spi_in)

        def keymat(spi: bytes) -> tuple[bytes, bytes]:
            km = keymat_v1(sa.keying.prf, sa.keying.keys.skeyid_d, ProtocolV1.ESP, spi,
                           self.ni, self.nr, encr + integ, self.g_qm)  # fmt: skip
            return km[:encr], km[encr:]

        keys = ChildKeys(*keymat(spi_r), *keymat(spi_i))
        mode = Mode.TRANSPORT if UDP_MODES.get(self.choice.mode, self.choice.mode) == (
            EncapMode.TRANSPORT) else Mode.TUNNEL  # fmt: skip
        self.child = ChildSa(
            name=self.config.name, spi_in=self.spi_in, spi_out=spi_out, suite=suite,
            mode=mode, local_ts=(self.local_ts,), remote_ts=(self.remote_ts,), keys=keys,
            installed_at=0.0,
        )  # fmt: skip

    # --- initiator -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        config, sa = self.config, self.sa
        self.local_ts, self.remote_ts = self._selectors(config)
        self.spi_in = sa.manager.allocate_esp_spi()
        self.ni = sa.rng.randbytes(NONCE_SIZE)
        pfs = any(p.dh for p in config.esp_proposals)
        rekey_after, life = config.time_limits(0.0)
        _, life_bytes = config.byte_limits(0.0)
        lifetime = (int(life) if life else None, int(life_bytes) // 1024 if life_bytes else None)
        offer = esp_sa(config.esp_proposals, self.spi_in, self._mode(config), lifetime, pfs)
        payloads: list = [offer, NonceV1(self.ni)]
        if pfs:
            group = next(p.dh[0] for p in config.esp_proposals if p.dh)
            self.ke = key_exchange_for(group, sa.rng)
            payloads.append(KeV1(self.ke.public_key))
        payloads += self._ids()
        prf, skeyid_a = sa.keying.prf, sa.keying.keys.skeyid_a
        self._send(payloads, lambda after: quick_hash1(prf, skeyid_a, self.message_id, after), now)

    def receive(self, chain: PayloadChain, now: float) -> bool:
        """One message of this exchange; True once it is complete."""
        sa = self.sa
        prf, skeyid_a, mid = sa.keying.prf, sa.keying.keys.skeyid_a, self.message_id
        if self.initiator and self.expect == 2:
            self._check(chain, lambda after: quick_hash2(prf, skeyid_a, mid, self.ni, after))
            self._response(chain)
            self._send([], lambda _: quick_hash3(prf, skeyid_a, mid, self.ni, self.nr), now,
                       final=True)  # fmt: skip
            self._install(now)
            return True
        if not self.initiator and self.expect == 1:
            self._check(chain, lambda after: quick_hash1(prf, skeyid_a, mid, after))
            self._request(chain)
            self.expect = 3
            payloads: list = [
                SaV1((ProposalV1(self.choice.proposal.number, ProtocolV1.ESP, self.spi_in,
                                 self.choice.proposal.transforms),)),
                NonceV1(self.nr),
            ]  # fmt: skip
            if self.ke is not None:
                payloads.append(KeV1(self.ke.public_key))
            if self.peer_sent_ids:
                payloads += self._ids()
            self._send(payloads, lambda after: quick_hash2(prf, skeyid_a, mid, self.ni, after),
                       now)  # fmt: skip
            return False
        if not self.initiator and self.expect == 3:
            digest = quick_hash3(prf, skeyid_a, mid, self.ni, self.nr)
            first = chain.payloads[0] if chain.payloads else None
            if not isinstance(first, HashV1Payload) or first.data != digest:
                raise AuthenticationFailed("Quick Mode HASH(3) does not verify")
            self._install(now)
            return True
        raise InvalidSyntax(f"unexpected Quick Mode message {self.expect}")

    def _response(self, chain: PayloadChain) -> None:
        offered = chain.first(SaV1)
        if offered is None or len(offered.proposals) != 1:
            raise NoProposalChosen("Quick Mode answer without exactly one ESP proposal")
        if len(offered.proposals[0].transforms) != 1:
            raise NoProposalChosen("Quick Mode answer with more than one transform")
        self.choice = select_esp(self.config.esp_proposals, offered)
        self.nr = self._nonce(chain)
        if self.ke is not None and self.choice.suite.dh is None:
            raise NoProposalChosen("the responder dropped the PFS group we proposed")
        self._pfs(chain)
        ids = chain.all(IdV1Payload)
        if ids:
            if len(ids) != 2:
                raise InvalidSyntax("Quick Mode answer with one ID payload")
            if ts_of(ids[0]) != self.local_ts or ts_of(ids[1]) != self.remote_ts:
                raise TsUnacceptable("the responder changed the Quick Mode identities")
        self._derive(self.choice.proposal.spi)

    # --- responder -------------------------------------------------------------------------

    peer_sent_ids = False

    def _request(self, chain: PayloadChain) -> None:
        sa = self.sa
        self.ni = self._nonce(chain)
        ids = chain.all(IdV1Payload)
        if len(ids) not in (0, 2):
            raise InvalidSyntax("Quick Mode request with one ID payload")
        self.peer_sent_ids = bool(ids)
        if ids:
            remote, local = ts_of(ids[0]), ts_of(ids[1])
        else:
            remote, local = host_selector(sa.remote[0]), host_selector(sa.local[0])
        offered = chain.first(SaV1)
        if offered is None:
            raise InvalidSyntax("Quick Mode request without an SA payload")
        error: Exception = TsUnacceptable(f"no child accepts {remote} === {local}")
        for config in sa.connection.children:
            ours_local, ours_remote = self._selectors(config)
            if not (is_subset((local,), (ours_local,)) and is_subset((remote,), (ours_remote,))):
                continue
            try:
                self.choice = select_esp(config.esp_proposals, offered)
            except NoProposalChosen as exc:
                error = exc
                continue
            wanted = UDP_MODES.get(self.choice.mode, self.choice.mode)
            if (wanted == EncapMode.TRANSPORT) != (config.mode is Mode.TRANSPORT):
                error = NoProposalChosen(f"{self.choice.mode.name} is not the child's mode")
                continue
            self.config, self.local_ts, self.remote_ts = config, local, remote
            break
        else:
            raise error
        self.nr = sa.rng.randbytes(NONCE_SIZE)
        self.spi_in = sa.manager.allocate_esp_spi()
        self._pfs(chain)
        self._derive(self.choice.proposal.spi)

    # --- the end ---------------------------------------------------------------------------

    def _install(self, now: float) -> None:
        sa = self.sa
        old = self.rekeys if self.initiator else self._replaced()
        sa.children.install(
            self.child, now, replaces=old, initiated=self.initiator, wait_for_peer=True
        )
        if old is not None and self.initiator:
            sa.retire_later(old, now)

    def _replaced(self) -> ChildEntry | None:
        """A Quick Mode for a child and selectors we already carry rekeys it (IKEv1 has no
        REKEY_SA: the peer deletes the old pair later, or it expires)."""
        for entry in self.sa.children.entries():
            if entry.phase in LIVE and entry.child.carries == self.child.carries:
                return entry
        return None

    def failed(self, reason: str, notify, now: float) -> None:
        """The exchange failed or went unanswered: give back the SPI, say so."""
        sa = self.sa
        if self.spi_in:
            sa.manager.release_esp_spi(self.spi_in)
        if self.rekeys is not None:
            sa.children.rekey_refused(self.rekeys, now)
        name = self.config.name if self.config else "?"
        sa.emit(ChildSaFailed(sa.name, name, reason, notify))
