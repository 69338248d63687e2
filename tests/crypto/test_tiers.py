"""The hazmat tier holds: who may import raw primitives, and fedcore.he / runtime import without cycles.

Read from the source with ``ast`` (no imports run), so a regression names the file and line.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "fedcore"
# imports below module top allowed only to keep an optional dependency optional (Ray is an
# extra; the C kernel fedcore.crypto._mont is built only where GMP's headers are)
OPTIONAL = {"ray", "fedcore.runtime._ray", "fedcore.crypto._mont"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")


SOURCES = {_module(p): p for p in sorted(ROOT.rglob("*.py")) if "_pb2" not in p.name}


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # ``from pkg import sub`` depends on pkg.sub, ``from mod import name`` on mod
            names = {f"{node.module}.{alias.name}" for alias in node.names} & set(SOURCES)
            out += [(name, node.lineno, id(node) in top) for name in sorted(names) or [node.module]]
    return out


def _violations(rule) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        f"{SOURCES[m].relative_to(ROOT.parent)}:{line} imports {name}"
        for m in SOURCES
        for name, line, at_top in _imports(SOURCES[m])
        if rule(m, name, at_top)
    ]


def test_only_crypto_imports_private_crypto_modules() -> None:
    def rule(module: str, name: str, at_top: bool) -> bool:
        return name.startswith("fedcore.crypto._") and not module.startswith("fedcore.crypto")

    assert _violations(rule) == []


def test_phe_is_imported_only_by_crypto_and_the_bench_baseline() -> None:
    def rule(module: str, name: str, at_top: bool) -> bool:
        return name.split(".")[0] == "phe" and not module.startswith(("fedcore.crypto", "fedcore.bench"))

    assert _violations(rule) == []


@pytest.mark.parametrize("package", ["fedcore.he", "fedcore.vertical"])
def test_no_raw_big_integer_arithmetic_above_crypto(package: str) -> None:
    def rule(module: str, name: str, at_top: bool) -> bool:
        return module.startswith(package) and name.split(".")[0] == "gmpy2"

    assert _violations(rule) == []


@pytest.mark.parametrize("package", ["fedcore.crypto", "fedcore.he", "fedcore.runtime"])
def test_imports_are_at_module_top_and_acyclic(package: str) -> None:
    def inner(module: str, name: str, at_top: bool) -> bool:
        return (
            module.startswith(package)
            and not at_top
            and name.split(".")[0] != "__future__"
            and not any(name == o or name.startswith(o + ".") for o in OPTIONAL)
        )

    assert _violations(inner) == []
    members = [m for m in SOURCES if m.startswith(package + ".") or m == package]
    graph = {
        m: {name for name, _, _ in _imports(SOURCES[m]) if name in members and name != m} for m in members
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for target in graph[module]:
                visit(target, (*path, module))
            done.add(module)

    for module in members:
        visit(module, ())
