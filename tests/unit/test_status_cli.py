"""``ikepulse status --json``: one compact line by default (the daemon's own line passed
through), indented with ``--pretty``; the same document either way (scripts parse it,
nothing may depend on the layout)."""

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
}
SHOWN = {key: ANSWER[key] for key in ("ike_sas", "connections", "counters")}


def _run(monkeypatch, *args: str, answer: dict = ANSWER, exit_code: int = 0) -> str:
    line = json.dumps(answer).encode() + b"\n"  # as runtime/control.py writes it
    monkeypatch.setattr(main_cli, "request", lambda path, command, timeout=None: answer)
    monkeypatch.setattr(main_cli, "request_raw", lambda path, command, timeout=None: line)
    result = CliRunner().invoke(main, ["--socket", "/tmp/x.sock", "status", *args])
    assert result.exit_code == exit_code, result.output
    return result.output


def test_json_is_one_compact_line_with_the_three_sections(monkeypatch):
    out = _run(monkeypatch, "--json")
    assert out.count("\n") == 1
    assert json.loads(out) == SHOWN
    assert out == json.dumps(SHOWN) + "\n"


def test_an_answer_in_another_order_is_decoded_and_shows_the_same(monkeypatch):
    reordered = {"counters": ANSWER["counters"], **ANSWER, "extra": 1}
    out = _run(monkeypatch, "--json", answer=reordered)
    assert json.loads(out) == SHOWN


def test_an_error_answer_is_an_error(monkeypatch):
    out = _run(monkeypatch, "--json", answer={"ok": False, "error": "busy"}, exit_code=1)
    assert "busy" in out


def test_pretty_is_indented_and_the_same_document(monkeypatch):
    compact = _run(monkeypatch, "--json")
    pretty = _run(monkeypatch, "--json", "--pretty")
    assert pretty.count("\n") > 5 and '\n  "ike_sas"' in pretty
    assert json.loads(pretty) == json.loads(compact)
    assert json.loads(_run(monkeypatch, "--pretty")) == json.loads(compact)
