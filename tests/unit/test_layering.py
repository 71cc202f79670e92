"""The sans-IO layers never touch sockets, clocks, the event loop or the OS RNG (DESIGN.md §3.1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "ikepulse"
FORBIDDEN = {"asyncio", "socket", "time", "selectors", "threading", "secrets"}
SANS_IO = ["core", "wire", "crypto", "esp"]


def _modules():
    for layer in SANS_IO:
        yield from sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(SRC)))
def test_no_io_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert not FORBIDDEN & set(names), f"{path.name} imports {names}"
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            assert all(a.name != "urandom" for a in node.names)
    assert "os.urandom" not in path.read_text()


def _imported(path: Path, package: str):
    """Absolute names of the modules ``path`` (inside ``ikepulse.<package>``) imports."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = {0: [], 1: ["ikepulse", package], 2: ["ikepulse"]}[node.level]
            yield ".".join([*parent, *filter(None, [node.module])])


@pytest.mark.parametrize("path", sorted((SRC / "esp").glob("*.py")), ids=lambda p: p.name)
def test_esp_stays_below_core_runtime_and_config(path):
    # DESIGN.md §2: esp and core never import each other; runtime and config sit above.
    for name in _imported(path, "esp"):
        assert not name.startswith(("ikepulse.core", "ikepulse.runtime", "ikepulse.config")), name
