"""Codec throughput on one large float32 array, beside numpy's own tobytes/frombuffer."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

DESCRIPTION = "encode/decode MB/s of a large float32 array vs ndarray.tobytes/np.frombuffer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=int, default=400, help="array size in MB (default 400)")
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
    return {"array": f"float32 x {array.size:,} ({mb:.0f} MB)", "rows": rows}
