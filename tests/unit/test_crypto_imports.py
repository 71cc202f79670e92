"""crypto/, the proposal type (core/proposal.py) and its parser (config/proposals.py) stay
free of clocks, sockets and ambient randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import ikepulse.config.proposals
import ikepulse.core.proposal
import ikepulse.crypto

FORBIDDEN_MODULES = {"time", "asyncio", "socket", "os", "secrets", "random"}
FILES = sorted(Path(ikepulse.crypto.__file__).parent.glob("*.py")) + [
    Path(ikepulse.core.proposal.__file__),
    Path(ikepulse.config.proposals.__file__),
]


def test_no_forbidden_imports():
    for path in FILES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


def test_modules_stay_small():
    for path in FILES:
        assert len(path.read_text().splitlines()) <= 400, path.name
