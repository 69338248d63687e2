"""Transports sit below simulation and the test kit: nothing under fedcore/transport imports them."""

from __future__ import annotations

import ast
from pathlib import Path

import fedcore.transport

ABOVE = ("fedcore.sim", "fedcore.testing")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_transport_module_imports_sim_or_testing() -> None:
    folder = Path(fedcore.transport.__file__).parent
    files = sorted(folder.rglob("*.py"))
    assert len(files) > 5
    bad = {
        f"{path.name}: {name}"
        for path in files
        for name in _imports(path)
        if name in ABOVE or name.startswith(tuple(f"{a}." for a in ABOVE))
    }
    assert not bad, f"transport imports upward: {sorted(bad)}"
