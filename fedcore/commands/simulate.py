"""``fedcore simulate SCRIPT --parties N``: run every party of a job in one machine."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fedcore.commands._common import (
    SUMMARY_MIN_VALUES,
    WHOLE_HINT,
    ProgressBoard,
    arrays_to_files,
    print_json,
    summarize,
    summarize_arrays,
)
from fedcore.errors import ConfigError
from fedcore.params import convert_params
from fedcore.results import jsonable
from fedcore.runtime import Runtime, make_runtime
from fedcore.script import load_script
from fedcore.sim import DEFAULT_OUTPUT_ROOT, SimResult, new_job_id, party_names, simulate
from fedcore.sim._exit import exits_cleanly, stop_descendants


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="run a protocol script with N parties in one machine")
    p.add_argument("script", help="protocol script with main(ctx, **params)")
    p.add_argument("--parties", type=int, default=3, help="number of parties (default 3)")
    p.add_argument("--party-names", help="comma-separated party names (default p0..pN-1)")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="script parameter, converted to the type main() annotates (exit 2 if it does not convert)",
    )
    p.add_argument("--seed", type=int, default=0, help="job seed (default 0)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds any receive may wait (default 120)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--kill", action="append", metavar="NAME[:after=K]", help="kill NAME after it sent K messages"
    )
    p.add_argument("--transport", choices=["local", "grpc"], default="local")
    p.add_argument(
        "--engine",
        choices=["coop", "threads", "ray", "local"],
        default=None,
        help="coop: parties as greenlets over worker processes (default with --transport local); "
        "threads: an OS thread per party (default with grpc; for scripts that wait on each other "
        "outside ctx); ray: one actor per party. 'local' is the old name of the default",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="coop worker processes (default: 1 below 2,000 parties, else one per core)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write every array of the results to DIR/PARTY/KEY.npy and the JSON naming them to "
        "DIR/results.json (the printed JSON names file, shape and dtype)",
    )
    p.add_argument("--address", help="Ray cluster address for --engine ray")
    p.add_argument("--runtime", default="processes", help="shared local runtime backend")
    p.add_argument(
        "--output-dir",
        default=str(DEFAULT_OUTPUT_ROOT),
        help="each party's files go to DIR/PARTY/JOB_ID/ (default ./fedcore-output)",
    )
    p.add_argument("--job-id", help="names the run and its output folders (default sim-<time>-<random>)")
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


def text_params(items: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` pairs as given; ``main``'s annotations say what each value becomes."""
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE with KEY a Python identifier")
        params[key] = raw
    return params


def script_params(script: str, items: list[str] | None) -> dict[str, Any]:
    """The ``--param`` values checked and converted against the script's ``main`` (exit 2 if not)."""
    loaded = load_script(script)
    raw = text_params(items)
    loaded.check_params(raw)
    return convert_params(loaded.main, raw, from_text=True)


def run(args: argparse.Namespace) -> int:
    names = args.party_names.split(",") if args.party_names else None
    all_names = party_names(None if names else args.parties, names)
    params = script_params(args.script, args.param)
    kills = parse_kill(args.kill)
    args.job_id = new_job_id(args.job_id)
    board = ProgressBoard(len(all_names), enabled=not args.json)
    with exits_cleanly(), board:
        result = _run_engine(args, list(all_names), params, kills, board)
    parties = result.parties
    document: dict[str, Any] = {
        "parties": parties,
        "seconds": result.seconds,
        "job_id": result.job_id,
        "output_dir": str(result.output_dir),
        "failed": sorted(result.errors()),
    }
    if args.out:
        document["parties"] = _save_arrays(parties, Path(args.out))
        document["out"] = str(Path(args.out).absolute())
        (Path(args.out) / "results.json").write_text(json.dumps(jsonable(document)) + "\n")
    elif args.json:
        document["parties"], count = summarize_arrays(parties)
        if count:
            document["arrays"] = f"{count} arrays over {SUMMARY_MIN_VALUES} values summarised: {WHOLE_HINT}"
    if args.json:
        print_json(document)
    else:
        _print_summary(result, args.out)
    return 1 if result.errors() else 0  # any failed party fails the run; the output still lists all


def _save_arrays(parties: dict[str, Any], out: Path) -> dict[str, Any]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        return {name: arrays_to_files(value, out / name, "result") for name, value in parties.items()}
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the result arrays there ({exc})") from None


def _run_engine(
    args: argparse.Namespace,
    names: list[str],
    params: dict[str, Any],
    kills: dict[str, int],
    board: ProgressBoard,
) -> SimResult:
    with _runtime(args) as runtime:
        return simulate(
            args.script,
            engine=args.engine,
            workers=args.workers,
            names=names,
            params=params,
            seed=args.seed,
            timeout_s=args.timeout,
            kill=kills,
            runtime=runtime,
            transport=args.transport,
            progress=board,
            output_dir=args.output_dir,
            job_id=args.job_id,
            address=args.address,
        )


@contextlib.contextmanager
def _runtime(args: argparse.Namespace) -> Iterator[Runtime | str]:
    """The runtime every party shares; under Ray each actor makes its own, named here."""
    if args.engine == "ray":
        yield "ray" if args.runtime == "processes" else args.runtime  # actors use their node's cores
        return
    runtime = make_runtime(args.runtime)
    try:
        yield runtime
    except BaseException:
        stop_descendants()  # a pool task may still run: closing the pool would wait for it
        raise
    finally:
        runtime.close()


def _print_summary(result: SimResult, out_dir: str | None = None) -> None:
    errors = result.errors()
    out = sys.stdout
    out.write(
        f"{len(result.parties)} parties, {len(errors)} failed, {result.seconds:.2f} s (job {result.job_id})\n"
    )
    shown = list(result.parties.items())
    for name, value in shown[:20]:
        out.write(f"  {name}: {summarize(value)}\n")
    if len(shown) > 20:
        out.write(f"  ... and {len(shown) - 20} more (use --json for all)\n")
    if out_dir:
        out.write(f"  arrays: {Path(out_dir).absolute()}/PARTY/result.KEY.npy, named in results.json\n")
    written = _written(result)
    if written:
        out.write(f"  files: {written} under {result.output_dir}/PARTY/{result.job_id}/\n")


def _written(result: SimResult) -> int:
    """How many files the parties wrote into their output folders."""
    if result.output_dir is None:
        return 0
    return sum(
        1
        for party in result.parties
        for path in (result.output_dir / party / result.job_id).rglob("*")
        if path.is_file()
    )
