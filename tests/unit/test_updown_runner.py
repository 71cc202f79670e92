"""Running updown hooks: environment handed over, a hung script killed, failures counted;
and the selector formatting strongSwan's scripts expect."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter

from ikepulse.core.connection import Updown
from ikepulse.runtime.updown import Run, Runner, port, subnet
from ikepulse.wire.traffic_selectors import TrafficSelector


def run(command: str, timeout: float = 5.0, env: dict | None = None) -> tuple[int | None, Counter]:
    counters: Counter[str] = Counter()
    hook = Run(
        "site/lan", Updown(command, False, timeout), {"PLUTO_VERB": "up-client", **(env or {})}
    )
    return asyncio.run(Runner(counters).execute(hook)), counters


def test_the_script_sees_the_environment(tmp_path):
    out = tmp_path / "out"
    status, counters = run(f'echo "$PLUTO_VERB $X" > {out}', env={"X": "y"})
    assert status == 0 and out.read_text() == "up-client y\n"
    assert counters == Counter(updown_runs=1)


def test_a_failing_script_is_counted():
    status, counters = run("exit 3")
    assert status == 3 and counters["updown_failures"] == 1


def test_a_hung_script_and_its_children_are_killed_at_the_timeout(tmp_path):
    started = time.monotonic()
    status, counters = run(f"sleep 30 & echo $! > {tmp_path}/pid; wait", timeout=0.3)
    assert status is None and counters["updown_timeouts"] == 1
    assert time.monotonic() - started < 5
    pid = int((tmp_path / "pid").read_text())
    time.sleep(0.1)
    try:
        with open(f"/proc/{pid}/stat") as stat:  # gone, or a zombie awaiting its reaper
            assert stat.read().split()[2] == "Z"
    except FileNotFoundError:
        pass


def test_runs_for_one_tunnel_go_one_after_the_other(tmp_path):
    out = tmp_path / "order"

    async def both():
        runner = Runner(Counter())
        for verb, delay in (("up", "0.3"), ("down", "0")):
            command = f"sleep {delay}; echo {verb} >> {out}"
            runner.start(Run("site/lan", Updown(command, False, 5), {"PLUTO_VERB": verb}))
        await runner.drain()

    asyncio.run(both())
    assert out.read_text() == "up\ndown\n"


def ts(start: str, end: str, protocol: int = 0, ports: tuple[int, int] = (0, 65535)):
    return TrafficSelector(ipaddress.ip_address(start), ipaddress.ip_address(end), protocol, *ports)


def test_a_range_is_widened_to_the_smallest_covering_subnet():
    assert subnet(ts("203.0.113.0", "203.0.113.63")) == "203.0.113.0/26"
    assert subnet(ts("203.0.113.5", "203.0.113.9")) == "203.0.113.0/28"
    assert subnet(ts("2001:db8::1", "2001:db8::1")) == "2001:db8::1/128"


def test_ports_ranges_and_icmp_type_and_code():
    anything = ts("203.0.113.0", "203.0.113.63")
    web = ts("203.0.113.0", "203.0.113.63", 6, (443, 443))
    high = ts("203.0.113.0", "203.0.113.63", 6, (1024, 65535))
    assert port(web, anything, True) == "443" and port(web, anything, False) == "0"
    assert port(high, web, True) == "1024:65535"
    echo = ts("203.0.113.0", "203.0.113.63", 1, (0x0800, 0x0800))  # type 8, code 0
    assert port(echo, anything, True) == "8" and port(echo, anything, False) == "0"
