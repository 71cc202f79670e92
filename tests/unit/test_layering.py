"""The sans-IO layers never touch sockets, clocks, the event loop or the OS RNG (DESIGN.md §3.1),
and never import config, which builds their value types (DESIGN.md §2)."""

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


def _imported_modules(tree: ast.AST, package: str):
    """Every module an import statement names (at any depth), relative ones resolved
    against ``package``; ``from X import y`` yields both ``X`` and ``X.y``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _imports_config(tree: ast.AST, package: str) -> bool:
    return any(
        name == "ikepulse.config" or name.startswith("ikepulse.config.")
        for name in _imported_modules(tree, package)
    )


def _package(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(SRC)))
def test_sans_io_layers_do_not_import_config(path):
    """config builds core's types; the layers below never reach back (DESIGN.md §2)."""
    assert not _imports_config(ast.parse(path.read_text()), _package(path))


@pytest.mark.parametrize(
    ("source", "package"),
    [
        ("import ikepulse.config.schema", "ikepulse.core"),
        ("from ikepulse.config import build", "ikepulse.core"),
        ("from ..config.proposals import DEFAULT_IKE_PROPOSALS", "ikepulse.core"),
        ("from ... import config", "ikepulse.core.tasks"),
        ("def later():\n    from ..config import loader", "ikepulse.esp"),
    ],
)
def test_the_config_import_check_sees_every_form(source, package):
    assert _imports_config(ast.parse(source), package)


@pytest.mark.parametrize(
    "source",
    ["from ..connection import ChildConfig", "from . import config", "import configparser"],
)
def test_the_config_import_check_allows_other_imports(source):
    assert not _imports_config(ast.parse(source), "ikepulse.core.tasks")
