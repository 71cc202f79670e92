"""The lab's config writers (testing/lab_configs.py), IKEv1 keywords included."""

import tomllib

from ikepulse.testing import lab, lab_configs
from ikepulse.testing.lab_configs import ikepulse_conf, swanctl_conf


def _connection_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("local {")[0].splitlines()]


def test_lab_reexports_the_writers():
    assert lab.swanctl_conf is lab_configs.swanctl_conf
    assert lab.ikepulse_conf is lab_configs.ikepulse_conf
    assert lab.PSK == lab_configs.PSK


def test_swanctl_defaults_to_ikev2_main_without_dpd():
    lines = _connection_lines(swanctl_conf(local_addr="198.51.100.2", remote_addr="198.51.100.1"))
    assert "version = 2" in lines
    assert not [line for line in lines if line.startswith(("aggressive", "dpd_"))]


def test_swanctl_ikev1_aggressive_with_dpd():
    text = swanctl_conf(
        local_addr="198.51.100.2",
        remote_addr="198.51.100.1",
        version=1,
        aggressive=True,
        dpd_delay="2s",
        dpd_timeout="10s",
    )
    lines = _connection_lines(text)
    for expected in ("version = 1", "aggressive = yes", "dpd_delay = 2s", "dpd_timeout = 10s"):
        assert expected in lines
    assert lines.count("version = 1") == 1


def test_ikepulse_conf_version_and_aggressive_are_toml():
    plain = tomllib.loads(ikepulse_conf(local_addr="198.51.100.1", remote_addr="198.51.100.2"))
    assert plain["connections"]["lab"]["version"] == 2
    assert "aggressive" not in plain["connections"]["lab"]
    v1 = tomllib.loads(
        ikepulse_conf(
            local_addr="198.51.100.1", remote_addr="198.51.100.2", version=1, aggressive=True
        )
    )
    assert v1["connections"]["lab"]["version"] == 1
    assert v1["connections"]["lab"]["aggressive"] is True
    assert v1["connections"]["lab"]["children"]["lan"]["local_ts"] == ["203.0.113.0/26"]
