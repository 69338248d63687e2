"""``fedcore bench NAME``: benchmarks, one module per name in ``fedcore.bench``.

A bench module defines ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> dict``.
The dict is printed as JSON with ``--json``; otherwise its ``rows`` (a list of flat dicts)
become a table and every other key a ``key: value`` line.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Any

import fedcore.bench
from fedcore.commands._common import print_json
from fedcore.results import jsonable


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="measure speed against a baseline run in the same process")
    benches = p.add_subparsers(dest="bench", required=True, metavar="NAME")
    for info in sorted(pkgutil.iter_modules(fedcore.bench.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"fedcore.bench.{info.name}")
        bp = benches.add_parser(info.name, help=getattr(module, "DESCRIPTION", ""))
        bp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        module.add_arguments(bp)
        bp.set_defaults(func=_runner(module))


def _runner(module: Any):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        result = module.run(args)
        if args.json:
            print_json(result)
        else:
            print_table(result)
        return 0

    return run


def print_table(result: dict[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    rows = result.get("rows", [])
    for key, value in result.items():
        if key != "rows":
            out.write(f"{key}: {jsonable(value)}\n")
    if not rows:
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + "\n")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(jsonable(value))
