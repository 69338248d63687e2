"""Registration: every registered type keeps its encoding, and decodes whatever was imported."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import fedcore
from fedcore import wire
from fedcore.errors import DecodeError
from fedcore.testing import forged_encoding
from fedcore.wire import _catalog, _registry

from .samples import RANDOMIZED, REFUSED, samples

GOLDEN = json.loads((Path(__file__).parent / "vectors" / "registered.json").read_text())
PACKAGE = Path(fedcore.__file__).parent


def _all_registered() -> frozenset[str]:
    _registry.load_catalog()
    return frozenset(n for n in _registry.registered_names() if n.startswith("fedcore."))


def test_every_registered_type_has_a_sample_and_a_golden_encoding() -> None:
    names = _all_registered()
    assert set(samples()) == names, "add the new type to tests/wire/samples.py"
    assert set(GOLDEN) == names - REFUSED, "run tests/wire/vectors/make_registered.py"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_encodings_are_unchanged(name: str) -> None:
    old = bytes.fromhex(GOLDEN[name])
    value = wire.decode(old)
    assert type(value) is _registry.by_name(name).cls  # type: ignore[union-attr]
    assert wire.encode(value) == old  # decode then encode gives back the pinned bytes
    if name not in RANDOMIZED:
        assert wire.encode(samples()[name]()) == old


def test_a_private_key_is_refused_both_ways() -> None:
    (build,) = [samples()[n] for n in REFUSED]
    with pytest.raises(TypeError, match="never encoded"):
        wire.encode(build())


def _registering_modules() -> set[str]:
    """Modules of the fedcore package that call ``wire.register`` or ``wire.message``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "wire" and path.parent.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            func = node.func if isinstance(node, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and func.attr in ("register", "message")
                and isinstance(func.value, ast.Name)
                and func.value.id == "wire"
            ):
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
                found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_catalog_lists_exactly_the_modules_that_register_types() -> None:
    assert set(_catalog.MODULES) == _registering_modules()
    assert list(_catalog.MODULES) == sorted(_catalog.MODULES)


def test_a_fresh_process_decodes_every_type_after_importing_only_fedcore_wire(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs.json"
    blobs.write_text(json.dumps(GOLDEN))
    script = f"""
import json, sys
from fedcore import wire
assert not any(m.startswith(("fedcore.psi", "fedcore.he", "fedcore.secagg")) for m in sys.modules)
blobs = json.loads(open({str(blobs)!r}).read())
for name, blob in blobs.items():
    value = wire.decode(bytes.fromhex(blob))
    assert wire.encode(value).hex() == blob, name
print(len(blobs))
"""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}  # this tree's fedcore, wherever pytest runs
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(GOLDEN))]


def test_a_name_not_in_the_catalog_stays_unknown() -> None:
    with pytest.raises(DecodeError, match=r"unknown registered type 'fedcore\.nowhere\.Thing'"):
        wire.decode(forged_encoding("fedcore.nowhere.Thing", 1))


@wire.message("tests.Pair", layout=wire.Layout.TUPLE, lists=("names",))
@dataclass(frozen=True)
class Pair:
    count: int
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if type(self.count) is not int or self.count < 0:
            raise ValueError("count must be a non-negative int")


@wire.message("tests.One", layout="single")
@dataclass(frozen=True)
class One:
    values: np.ndarray


def test_message_round_trips_and_validates_through_post_init() -> None:
    out = wire.decode(wire.encode(Pair(2, ("a", "b"))))
    assert out == Pair(2, ("a", "b")) and type(out.names) is tuple
    assert _registry.by_name("tests.Pair").to_state(Pair(1, ("a",))) == (1, ["a"])  # type: ignore[union-attr]
    assert np.array_equal(wire.decode(wire.encode(One(np.arange(3)))).values, np.arange(3))
    with pytest.raises(DecodeError):
        wire.decode(forged_encoding("tests.Pair", (-1, [])))  # refused by Pair.__post_init__
    with pytest.raises(DecodeError):
        wire.decode(forged_encoding("tests.Pair", [1, []]))  # a list where the layout says tuple
    with pytest.raises(ValueError, match="tuple of 2 fields"):
        _registry.by_name("tests.Pair").from_state((1, [], 3))  # type: ignore[union-attr]


def test_message_needs_a_frozen_dataclass_and_a_consistent_layout() -> None:
    @dataclass
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="frozen dataclass"):
        wire.message("tests.Mutable")(Mutable)
    with pytest.raises(TypeError, match="bad lists"):
        wire.message("tests.Bad", layout="single")(Pair)
    with pytest.raises(ValueError):
        wire.message("tests.Bad", layout="bogus")
