"""Liveness checks behind a NAT with MOBIKE carry NAT-D notifies (RFC 4555 §3.8): like the
empty ones (RFC 7296 §2.4) they are logged at DEBUG at both ends, every dpd_delay for every
idle tunnel; the MOBIKE update they trigger is logged at INFO.

left (behind a NAT, original initiator)          right
INFORMATIONAL N(NATD_S) N(NATD_D)         -->                  DEBUG both ends
              <-- N(NATD_S) N(NATD_D)                          DEBUG both ends
INFORMATIONAL N(UPDATE_SA_ADDRESSES) N(COOKIE2) N(NATD_S) N(NATD_D) -->   INFO
"""

from __future__ import annotations

import logging

from ikepulse.config.build import liveness_policy
from ikepulse.testing.loopback import established, run_until_idle


def test_nat_d_liveness_checks_are_logged_at_debug_and_the_update_at_info(caplog):
    policy = liveness_policy(dpd_delay=10, dpd_timeout=5, nat_keepalive=0)
    a, b, sa, clock = established(policy, left_public="192.0.2.99")
    with caplog.at_level(logging.DEBUG, logger="ikepulse.ike"):
        run_until_idle(a, b, clock, until=clock.now + 31)  # idle: checks every 10 s
    lines = [
        (r.levelno, r.getMessage()) for r in caplog.records if "INFORMATIONAL" in r.getMessage()
    ]
    natd_only = "[ N(NAT_DETECTION_SOURCE_IP) N(NAT_DETECTION_DESTINATION_IP) ]"
    checks = {level for level, text in lines if text.endswith(natd_only)}
    updates = {level for level, text in lines if "UPDATE_SA_ADDRESSES" in text}
    assert a.manager.counters["mobike_updates_sent"] >= 1
    assert checks == {logging.DEBUG} and updates == {logging.INFO}
