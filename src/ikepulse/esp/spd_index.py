"""Outbound SPD lookup by destination prefix: a flow that misses the per-flow cache looks
at the policies whose remote selectors can hold its destination, not at every policy.

Each remote traffic selector's address range is split into CIDR blocks
(``ipaddress.summarize_address_range``); a destination is looked up once per prefix length
in use. The answer is unchanged from a linear walk in order of activation, newest first
(RFC 4301 §4.4.1 leaves the order to the SPD; ours lets the newest SA win, make-before-break):
among the policies that allow the flow, the one activated last.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spd import Flow, Policy

Key = tuple[int, int, int]
"""(IP version, prefix length, network as an integer)."""


def _blocks(policy: Policy) -> set[Key]:
    keys: set[Key] = set()
    for ts in policy.remote_ts:
        if ts.start.version != ts.end.version or ts.start > ts.end:
            continue  # matches nothing (``spd._matches``)
        for net in ipaddress.summarize_address_range(ts.start, ts.end):
            keys.add((net.version, net.prefixlen, int(net.network_address)))
    return keys


class PolicyIndex:
    """Active policies by the CIDR blocks of their remote selectors, each with the sequence
    number of its activation."""

    def __init__(self) -> None:
        self.seq: dict[Policy, int] = {}
        """Active policies, oldest activation first, with its number."""
        self._next = 0
        self._buckets: dict[Key, dict[Policy, None]] = {}
        self._keys: dict[Policy, set[Key]] = {}
        self._lengths: dict[int, Counter[int]] = {4: Counter(), 6: Counter()}
        """Per IP version, how many blocks of each prefix length are filed."""

    def __contains__(self, policy: Policy) -> bool:
        return policy in self.seq

    def __iter__(self):
        """Newest activation first."""
        return reversed(self.seq)

    def __len__(self) -> int:
        return len(self.seq)

    def add(self, policy: Policy) -> None:
        """Activate ``policy`` (again: it becomes the newest)."""
        self.discard(policy)
        self._next += 1
        self.seq[policy] = self._next
        keys = self._keys[policy] = _blocks(policy)
        for key in keys:
            self._buckets.setdefault(key, {})[policy] = None
            self._lengths[key[0]][key[1]] += 1

    def discard(self, policy: Policy) -> None:
        if self.seq.pop(policy, None) is None:
            return
        for key in self._keys.pop(policy):
            bucket = self._buckets[key]
            del bucket[policy]
            if not bucket:
                del self._buckets[key]
            lengths = self._lengths[key[0]]
            lengths[key[1]] -= 1
            if not lengths[key[1]]:
                del lengths[key[1]]

    def lookup(self, flow: Flow) -> Policy | None:
        """The newest active policy that allows ``flow`` out, or None."""
        version = flow.dst.version
        bits = 32 if version == 4 else 128
        dst = int(flow.dst)
        best, best_seq = None, 0
        for length in self._lengths[version]:
            network = dst >> (bits - length) << (bits - length) if length else 0
            bucket = self._buckets.get((version, length, network))
            if bucket is None:
                continue
            for policy in reversed(bucket):  # newest first: each bucket keeps that order
                seq = self.seq[policy]
                if seq <= best_seq:
                    break
                if policy.allows_outbound(flow):
                    best, best_seq = policy, seq
                    break
        return best
