"""Codec throughput: a large float32 array beside numpy's own tobytes/frombuffer, and the
decode of worst-case structures (refused or accepted) against the 50 MB/s floor."""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

DESCRIPTION = (
    "encode/decode MB/s of a large float32 array vs ndarray.tobytes/np.frombuffer, "
    "and decode MB/s of worst-case structures"
)
FLOOR_MB_S = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=int, default=400, help="array size in MB (default 400)")
    parser.add_argument(
        "--worst-mb", type=int, default=8, help="size of each worst-case message in MB (default 8)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        del out
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fedcore import wire

    array = np.random.default_rng(0).random(args.size_mb * 250_000, dtype=np.float32)
    encoded = wire.encode(array)
    raw = array.tobytes()
    mb = array.nbytes / 1e6
    timings = {
        "fedcore encode": _best(lambda: wire.encode(array), args.repeat),
        "fedcore encode_parts (zero-copy)": _best(lambda: wire.encode_parts(array), args.repeat),
        "fedcore decode": _best(lambda: wire.decode(encoded), args.repeat),
        "ndarray.tobytes": _best(array.tobytes, args.repeat),
        "np.frombuffer+copy": _best(lambda: np.frombuffer(raw, np.float32).copy(), args.repeat),
    }
    baseline = {"fedcore encode": "ndarray.tobytes", "fedcore decode": "np.frombuffer+copy"}
    rows = []
    for path, seconds in timings.items():
        row: dict[str, Any] = {"path": path, "seconds": seconds, "MB/s": mb / seconds}
        if path in baseline:
            row["vs numpy"] = timings[baseline[path]] / seconds
        rows.append(row)
    rows += _worst_cases(args.worst_mb * 1_000_000, args.repeat)
    slowest = min(r["MB/s"] for r in rows if r["path"].startswith("decode worst"))
    return {
        "array": f"float32 x {array.size:,} ({mb:.0f} MB)",
        "worst-case floor MB/s": FLOOR_MB_S,
        "slowest worst case MB/s": slowest,
        "rows": rows,
    }


def _outcome(data: bytes) -> str:
    from fedcore import wire
    from fedcore.errors import DecodeError

    try:
        wire.decode(data)
    except DecodeError:
        return "refused"
    return "decoded"


def _worst_cases(size: int, repeat: int) -> list[dict[str, Any]]:
    from fedcore.bench._codec_cases import worst_case_messages

    rows = []
    for name, data in worst_case_messages(size).items():
        seconds = _best(functools.partial(_outcome, data), repeat)
        rows.append(
            {
                "path": f"decode worst: {name}",
                "seconds": seconds,
                "MB/s": len(data) / 1e6 / seconds,
                "outcome": _outcome(data),
            }
        )
    return rows
