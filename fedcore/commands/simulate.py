"""``fedcore simulate SCRIPT --parties N``: run every party of a job in one machine."""

from __future__ import annotations

import argparse
import sys

from fedcore.commands._common import ProgressBoard, parse_params, print_json, summarize
from fedcore.errors import ConfigError
from fedcore.sim import SimResult, party_names, simulate


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run a protocol script with N parties in one machine")
    p.add_argument("script", help="protocol script with main(ctx, **params)")
    p.add_argument("--parties", type=int, default=3, help="number of parties (default 3)")
    p.add_argument("--party-names", help="comma-separated party names (default p0..pN-1)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="script parameter (JSON or string)")
    p.add_argument("--seed", type=int, default=0, help="job seed (default 0)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds any receive may wait (default 120)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--kill", action="append", metavar="NAME[:after=K]", help="kill NAME after it sent K messages"
    )
    p.add_argument("--transport", choices=["local", "grpc"], default="local")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="where parties run")
    p.add_argument("--address", help="Ray cluster address for --engine ray")
    p.add_argument("--runtime", default="processes", help="shared local runtime backend")
    p.set_defaults(func=run)


def parse_kill(items: list[str] | None) -> dict[str, int]:
    kills: dict[str, int] = {}
    for item in items or []:
        name, _, rest = item.partition(":")
        after = 0
        if rest:
            key, sep, value = rest.partition("=")
            if key != "after" or not sep or not value.isdigit():
                raise ConfigError(f"--kill {item!r}: expected NAME or NAME:after=K with K >= 0")
            after = int(value)
        kills[name] = after
    return kills


def run(args: argparse.Namespace) -> int:
    names = args.party_names.split(",") if args.party_names else None
    all_names = party_names(None if names else args.parties, names)
    params = parse_params(args.param)
    kills = parse_kill(args.kill)
    board = ProgressBoard(len(all_names), enabled=not args.json)
    with board:
        result = _run_engine(args, list(all_names), params, kills, board)
    if args.json:
        print_json({"parties": result.parties, "seconds": result.seconds})
    else:
        _print_summary(result)
    return 0


def _run_engine(
    args: argparse.Namespace, names: list[str], params: dict, kills: dict[str, int], board: ProgressBoard
) -> SimResult:
    if args.engine == "ray":
        from fedcore.ray_sim import simulate_on_ray

        runtime = "ray" if args.runtime == "processes" else args.runtime  # actors use their node's cores
        return simulate_on_ray(
            args.script, names=names, params=params, seed=args.seed, timeout_s=args.timeout,
            kill=kills, address=args.address, runtime=runtime,
        )
    from fedcore.runtime import make_runtime

    with make_runtime(args.runtime) as runtime:
        return simulate(
            args.script, names=names, params=params, seed=args.seed, timeout_s=args.timeout,
            kill=kills, runtime=runtime, transport=args.transport, progress=board,
        )


def _print_summary(result: SimResult) -> None:
    errors = result.errors()
    out = sys.stdout
    out.write(f"{len(result.parties)} parties, {len(errors)} failed, {result.seconds:.2f} s\n")
    shown = list(result.parties.items())
    for name, value in shown[:20]:
        out.write(f"  {name}: {summarize(value)}\n")
    if len(shown) > 20:
        out.write(f"  ... and {len(shown) - 20} more (use --json for all)\n")
