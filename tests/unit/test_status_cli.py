"""``ikepulse status --json``: one compact line by default, indented with ``--pretty``; the
same document either way (scripts parse it, nothing may depend on the layout)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ikepulse.cli import main as main_cli
from ikepulse.cli.main import main

ANSWER = {
    "ok": True,
    "ike_sas": [{"connection": "site", "state": "ESTABLISHED", "children": []}],
    "connections": [{"name": "site", "liveness": "alive", "last_death": None}],
    "counters": {"ike_received": 3},
    "not_shown": 1,
}


def _run(monkeypatch, *args: str) -> str:
    monkeypatch.setattr(main_cli, "request", lambda path, command, timeout=None: ANSWER)
    result = CliRunner().invoke(main, ["--socket", "/tmp/x.sock", "status", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_is_one_compact_line_with_the_three_sections(monkeypatch):
    out = _run(monkeypatch, "--json")
    assert out.count("\n") == 1
    expected = {key: ANSWER[key] for key in ("ike_sas", "connections", "counters")}
    assert json.loads(out) == expected


def test_pretty_is_indented_and_the_same_document(monkeypatch):
    compact = _run(monkeypatch, "--json")
    pretty = _run(monkeypatch, "--json", "--pretty")
    assert pretty.count("\n") > 5 and '\n  "ike_sas"' in pretty
    assert json.loads(pretty) == json.loads(compact)
    assert json.loads(_run(monkeypatch, "--pretty")) == json.loads(compact)
