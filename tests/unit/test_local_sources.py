"""The data plane's cache of the host's addresses (the preferred source of its routes)."""

import ipaddress

from ikepulse.runtime.dataplane import LocalSources

NET = [ipaddress.ip_network("203.0.113.0/24")]
OTHER = [ipaddress.ip_network("192.0.2.0/24")]


class Host:
    def __init__(self, *addresses: str) -> None:
        self.addresses = [ipaddress.ip_address(a) for a in addresses]
        self.dumps = 0

    def dump(self) -> list:
        self.dumps += 1
        return list(self.addresses)


def test_many_routes_cost_one_dump():
    host, clock = Host("198.51.100.2", "203.0.113.7"), [0.0]
    sources = LocalSources(lambda: clock[0], host.dump)
    assert [sources.source(NET) for _ in range(1000)] == ["203.0.113.7"] * 1000
    assert host.dumps == 1


def test_a_miss_dumps_again_at_most_once_a_second():
    host, clock = Host("198.51.100.2"), [0.0]
    sources = LocalSources(lambda: clock[0], host.dump)
    assert [sources.source(OTHER) for _ in range(100)] == [None] * 100
    assert host.dumps == 1
    host.addresses.append(ipaddress.ip_address("192.0.2.9"))
    clock[0] = 1.0
    assert sources.source(OTHER) == "192.0.2.9"
    assert host.dumps == 2


def test_forget_after_an_address_change():
    host, clock = Host("198.51.100.2"), [0.0]
    sources = LocalSources(lambda: clock[0], host.dump)
    assert sources.source(NET) is None
    host.addresses.append(ipaddress.ip_address("203.0.113.9"))
    assert sources.source(NET) is None  # within the second: not dumped again
    sources.forget()
    assert sources.source(NET) == "203.0.113.9"
