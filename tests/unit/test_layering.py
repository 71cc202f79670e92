"""The layering of DESIGN.md §2, read from the import statements: the sans-IO layers never
touch sockets, clocks, the event loop or the OS RNG (§3.1) and never import config; each
package imports only the packages below it; only the exchange table imports the task
modules; core has no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ikepulse.core.exchanges import EXCHANGES

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


ALLOWED = {
    "wire": set(),
    "crypto": {"wire"},
    "core": {"wire", "crypto"},
    "esp": {"wire", "crypto"},
    "config": {"core", "wire", "crypto"},
    "runtime": {"core", "esp", "config", "wire", "crypto"},
    "cli": {"runtime", "core", "esp", "config", "wire", "crypto"},
    "testing": {"runtime", "core", "esp", "config", "wire", "crypto"},
}
"""Which ikepulse packages each package may import (DESIGN.md §2)."""
TESTING_USERS = {"cli/demo.py"}
"""The product's only door to ``ikepulse.testing``: ``ikepulse demo`` runs the lab."""


def _all_modules():
    return sorted(p for p in SRC.rglob("*.py") if p.parent != SRC)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _ikepulse_packages(path: Path) -> set[str]:
    names = _imported_modules(ast.parse(path.read_text()), _package(path))
    packages = {n.split(".")[1] for n in names if n.startswith("ikepulse.")}
    return packages - {path.relative_to(SRC).parts[0]}


@pytest.mark.parametrize("path", _all_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_package_arrows(path):
    package = path.relative_to(SRC).parts[0]
    allowed = ALLOWED[package] | (
        {"testing"} if str(path.relative_to(SRC)) in TESTING_USERS else set()
    )
    assert _ikepulse_packages(path) <= allowed


TASK_MODULES = {cls.__module__ for _, classes in EXCHANGES.values() for cls in classes}


@pytest.mark.parametrize("path", _all_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_only_the_exchange_table_imports_task_modules(path):
    if _module_name(path) == "ikepulse.core.exchanges":
        return
    names = set(_imported_modules(ast.parse(path.read_text()), _package(path)))
    assert not names & TASK_MODULES


CORE = sorted((SRC / "core").rglob("*.py"))


def _type_checking_blocks(tree: ast.AST) -> list[ast.If]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(SRC)))
def test_core_imports_at_module_level_and_only_the_host_protocols_for_typing(path):
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = [n for n in ast.walk(function) if isinstance(n, ast.Import | ast.ImportFrom)]
            assert not inner, f"{function.name} imports inside a function"
    if _module_name(path) == "ikepulse.core.hosts":
        return
    for block in _type_checking_blocks(tree):
        typed = set(_imported_modules(ast.Module(body=block.body, type_ignores=[]), _package(path)))
        assert typed <= {"ikepulse.core.hosts"} | {
            f"ikepulse.core.hosts.{name}"
            for name in ("TaskHost", "SaRegistry", "ExchangeHost", "ChildHost", "IsakmpHost")
        }


def test_core_has_no_import_circle():
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in CORE}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for block in _type_checking_blocks(tree):
            block.body = []
        graph[name] = set(_imported_modules(tree, _package(path))) & set(modules)
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            assert state.get(nxt) != "open", " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
