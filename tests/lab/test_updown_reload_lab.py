"""updown hooks and live reload against strongSwan.

One script records its environment for both gateways: strongSwan's updown plugin runs it on
the right, ikepulse on the left, so the variables an existing script reads are compared with
what strongSwan itself gives. A reload then adds, changes and removes connections while a
ping runs through a tunnel the reload must not touch.
"""

from __future__ import annotations

import time

import pytest

from ikepulse.testing.lab import PSK, ikepulse_conf, swanctl_conf, wait_for

pytestmark = pytest.mark.lab

HOOK = """#!/bin/sh
{{ env | grep -E '^(PLUTO|IKEPULSE)_' | sort; echo ---; }} >> {out}
"""


def hook(lab, name: str) -> tuple[str, object]:
    out = lab.workdir / f"{name}.env"
    script = lab.workdir / f"{name}.sh"
    script.write_text(HOOK.format(out=out))
    script.chmod(0o755)
    return str(script), out


def records(path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    found = []
    for block in path.read_text().split("---\n"):
        lines = [line.split("=", 1) for line in block.splitlines() if "=" in line]
        if lines:
            found.append(dict(lines))
    return found


def test_updown_gets_strongswans_environment_and_a_tunnel_id_that_survives_rekeys(lab):
    right_script, right_out = hook(lab, "right")
    left_script, left_out = hook(lab, "left")
    charon = lab.charon(lab.right)
    charon.start(
        swanctl_conf(
            local_addr=lab.right_addr,
            remote_addr=lab.left_addr,
            child_extra=f"updown = {right_script}",
        )
    )
    daemon = lab.ikepulse(lab.left)
    conf = ikepulse_conf(local_addr=lab.left_addr, remote_addr=lab.right_addr)
    daemon.start(conf.replace('mode = "tunnel"', f'mode = "tunnel"\nupdown = "{left_script}"'))
    daemon.cli("up", "lab")
    (ours,) = wait_for(lambda: records(left_out), 10, "ikepulse's up hook")
    (theirs,) = wait_for(lambda: records(right_out), 10, "strongSwan's up hook")
    assert ours["PLUTO_VERB"] == theirs["PLUTO_VERB"] == "up-client"
    missing = {k for k in theirs if k.startswith("PLUTO_")} - set(ours)
    assert not missing, f"strongSwan gives {missing}, ikepulse does not"
    same = ("PLUTO_VERSION", "PLUTO_CONNECTION", "PLUTO_PROTO", "PLUTO_UDP_ENC")
    assert {k: ours.get(k) for k in same} == {k: theirs.get(k) for k in same}
    mirrored = [("ME", "PEER"), ("MY_ID", "PEER_ID"), ("MY_CLIENT", "PEER_CLIENT")]
    mirrored += [("MY_PORT", "PEER_PORT"), ("MY_PROTOCOL", "PEER_PROTOCOL")]
    for mine, peer in mirrored:
        assert ours[f"PLUTO_{mine}"] == theirs[f"PLUTO_{peer}"], mine
        assert ours[f"PLUTO_{peer}"] == theirs[f"PLUTO_{mine}"], peer
    assert ours["PLUTO_MY_CLIENT"] == "203.0.113.0/26"
    assert ours["IKEPULSE_TUNNEL_ID"] == "lab/lan"

    (sa,) = daemon.status()
    first_spi = sa["children"][0]["spi_in"]
    assert ours["IKEPULSE_SPI_IN"] == first_spi
    daemon.cli("rekey", "lab")  # the CHILD SA, then the IKE SA: neither is a down and up
    wait_for(
        lambda: daemon.status()[0]["children"][0]["spi_in"] != first_spi, 10, "the CHILD rekey"
    )
    spi_i = daemon.status()[0]["spi_i"]
    daemon.cli("rekey", "lab", "--ike")
    wait_for(lambda: daemon.status()[0]["spi_i"] != spi_i, 10, "the IKE rekey")
    time.sleep(1)
    assert len(records(left_out)) == 1
    assert len(records(right_out)) == 1  # strongSwan, too, calls no hook on a rekey

    daemon.cli("down", "lab")
    down = wait_for(lambda: records(left_out)[1:], 10, "ikepulse's down hook")[0]
    theirs_down = wait_for(lambda: records(right_out)[1:], 10, "strongSwan's down hook")[0]
    assert down["PLUTO_VERB"] == theirs_down["PLUTO_VERB"] == "down-client"
    assert down["IKEPULSE_TUNNEL_ID"] == ours["IKEPULSE_TUNNEL_ID"]
    assert down["PLUTO_REQID"] == ours["PLUTO_REQID"]
    assert down["PLUTO_UNIQUEID"] != ours["PLUTO_UNIQUEID"]  # a new IKE SA, as strongSwan's
    counters = daemon.counters()
    assert counters["updown_runs"] == 2 and counters.get("updown_failures", 0) == 0


# --- reload -------------------------------------------------------------------------------

NETS = {"c2": (128, 192), "c3": (144, 208), "c4": (160, 224)}
"""Extra connections: left and right site network (203.0.113.X/28), never routed."""


def _swanctl_extra(name: str) -> str:
    left, right = NETS[name]
    return f"""
  {name} {{
    version = 2
    local_addrs = 198.51.100.2
    remote_addrs = 198.51.100.1
    proposals = aes256gcm16-prfsha256-x25519
    local {{
      auth = psk
      id = right.example
    }}
    remote {{
      auth = psk
      id = {name}.example
    }}
    children {{
      {name} {{
        local_ts = 203.0.113.{right}/28
        remote_ts = 203.0.113.{left}/28
        esp_proposals = aes256gcm16
      }}
    }}
  }}"""


def _ikepulse_extra(name: str, extra: str = "") -> str:
    left, right = NETS[name]
    return f"""
[connections.{name}]
local_addrs = ["198.51.100.1"]
remote_addrs = ["198.51.100.2"]
proposals = ["aes256gcm16-prfsha256-x25519"]
start_action = "start"
local = {{ auth = "psk", id = "{name}.example" }}
remote = {{ auth = "psk", id = "right.example" }}
{extra}
[connections.{name}.children.{name}]
local_ts = ["203.0.113.{left}/28"]
remote_ts = ["203.0.113.{right}/28"]
esp_proposals = ["aes256gcm16"]
"""


def reload_lab(lab):
    """strongSwan knows lab, c2, c3 and c4; ikepulse starts lab, c2 and c3."""
    for _, right in NETS.values():  # strongSwan routes a policy from an address inside it
        lab.right.run("ip", "addr", "add", f"203.0.113.{right + 1}/32", "dev", "lo")
    charon = lab.charon(lab.right)
    base = swanctl_conf(local_addr=lab.right_addr, remote_addr=lab.left_addr)
    extra = "".join(_swanctl_extra(n) for n in NETS)
    secrets = f"secrets {{\n  ike-any {{\n    secret = {PSK}\n  }}\n"
    charon.start(base.replace("connections {", "connections {" + extra, 1).replace(
        "secrets {\n", secrets, 1
    ))  # fmt: skip
    daemon = lab.ikepulse(lab.left)
    lab_conf = ikepulse_conf(
        local_addr=lab.left_addr, remote_addr=lab.right_addr, start_action="start"
    )
    anyone = f'\n[secrets.any]\nsecret = "{PSK}"\n'
    daemon.start(lab_conf + anyone + _ikepulse_extra("c2") + _ikepulse_extra("c3"))
    wait_for(lambda: _up(daemon) >= {"lab", "c2", "c3"}, 15, "three tunnels")
    return charon, daemon, lab_conf + anyone


def _up(daemon) -> set[str]:
    return {s["connection"] for s in daemon.status() if s["state"] == "ESTABLISHED"}


def _children(daemon) -> dict[str, list]:
    return {
        s["connection"]: [(c["spi_in"], c["spi_out"]) for c in s["children"]]
        for s in daemon.status()
        if s["state"] == "ESTABLISHED"
    }


def _rewrite(daemon, text: str) -> None:
    header = daemon.config.read_text().split("\n[connections.", 1)[0]
    daemon.config.write_text(header + "\n" + text)


def test_reload_adds_changes_and_removes_while_an_unchanged_tunnel_loses_nothing(lab):
    charon, daemon, lab_conf = reload_lab(lab)
    before = _children(daemon)
    ping = lab.left_site.popen(
        ["ping", "-i", "0.1", "-c", "100", "-W", "1", "203.0.113.66"], lab.workdir / "ping.log"
    )
    time.sleep(2)
    _rewrite(daemon, lab_conf + _ikepulse_extra("c2", 'dpd_delay = "7s"') + _ikepulse_extra("c4"))
    started = time.monotonic()
    result = daemon.cli("reload")
    assert "added c4; changed c2; removed c3" in result.stdout
    wait_for(
        lambda: _up(daemon) == {"lab", "c2", "c4"} and _children(daemon)["c2"] != before["c2"],
        15,
        "c4 up, c2 replaced, c3 gone",
    )
    settled = time.monotonic() - started
    theirs = wait_for(
        lambda: (sas := charon.list_sas()) and len(sas) == 3 and sas, 15, "strongSwan's view"
    )
    assert sorted(sa["name"] for sa in theirs) == ["c2", "c4", "lab"]
    assert ping.wait(30) == 0
    summary = (lab.workdir / "ping.log").read_text()
    assert "100 received" in summary, summary
    assert _children(daemon)["lab"] == before["lab"]  # not touched: the same SPIs
    print(f"reload settled in {settled:.2f}s; ping: {summary.splitlines()[-2]}")


def test_an_invalid_file_is_rejected_and_the_running_configuration_stays(lab):
    charon, daemon, lab_conf = reload_lab(lab)
    before = _children(daemon)
    _rewrite(daemon, lab_conf + _ikepulse_extra("c2", 'dpd_delay = "soon"'))
    result = daemon.cli("reload", check=False)
    assert result.returncode != 0
    assert "running configuration kept" in result.stderr and "dpd_delay" in result.stderr
    assert "reload rejected" in daemon.log.read_text()
    time.sleep(1)
    assert _children(daemon) == before  # c3 not removed, c2 not replaced
    assert daemon.counters()["reloads_rejected"] == 1
    daemon.proc.send_signal(1)  # SIGHUP: the same file, the same answer, in the log
    wait_for(lambda: daemon.log.read_text().count("reload rejected") == 2, 10, "the SIGHUP")
    assert _children(daemon) == before
