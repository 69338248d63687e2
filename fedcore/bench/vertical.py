"""``fedcore bench vertical``: seconds per epoch of hetero-LR (fedcore.he) vs per-element ``phe``."""

from __future__ import annotations

import argparse
import time
from typing import Any

DESCRIPTION = "vertical LR on breast cancer: seconds per epoch with fedcore.he vs per-element phe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parties", type=int, default=2, help="guest + hosts (2 or 3)")
    parser.add_argument("--key-bits", type=int, default=1024, help="Paillier modulus bits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="fedcore.he epochs to time")
    parser.add_argument("--phe-batches", type=int, default=2, help="phe batches to time (then scaled)")
    parser.add_argument("--workers", type=int, default=None, help="process workers (default: all cores)")


def _train_main(
    ctx: Any, scheme: str, rows: int, epochs: int, batch_size: int, key_bits: int
) -> dict[str, Any]:
    import importlib

    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from fedcore.vertical import SCHEMES, train

    x, y = load_breast_cancer(return_X_y=True)
    x = (x[:rows] - x[:rows].mean(axis=0)) / x[:rows].std(axis=0)
    mine = ctx.parties.index(ctx.party)
    columns = np.array_split(np.arange(x.shape[1]), len(ctx.parties))[mine]
    features = x[:, columns]
    if mine == 0:
        features = np.hstack([features, np.ones((rows, 1))])
    keys = importlib.import_module(SCHEMES[scheme]).generate_keypair(key_bits)
    start = time.perf_counter()
    model = train(
        ctx,
        features,
        y[:rows] if mine == 0 else None,
        epochs=epochs,
        lr=0.1,
        batch_size=batch_size,
        scheme=scheme,
        keys=keys,
        timeout=3600,
    )
    return {"seconds": time.perf_counter() - start, "batches": model.batches}


def _timed(runtime: Any, parties: int, **params: Any) -> tuple[float, int]:
    from fedcore.sim import simulate

    result = simulate(_train_main, parties=parties, runtime=runtime, params=params, timeout_s=3600)
    if result.errors():
        raise RuntimeError(f"vertical LR failed: {result.errors()}")
    runs = list(result.parties.values())
    return max(r["seconds"] for r in runs), runs[0]["batches"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fedcore.runtime import make_runtime

    train_rows = 455  # breast cancer's 569 rows less a 20% test split
    per_epoch = -(-train_rows // args.batch_size)
    common = {"batch_size": args.batch_size, "key_bits": args.key_bits}
    rows = []
    for backend in ("processes", "threads"):
        runtime = make_runtime(backend, workers=args.workers)
        try:
            runtime.map(abs, list(range(runtime.workers)))  # start the workers outside the timings
            seconds, batches = _timed(
                runtime, args.parties, scheme="fedcore", rows=train_rows, epochs=args.epochs, **common
            )
        finally:
            runtime.close()
        rows.append(
            {
                "scheme": f"fedcore.he ({backend} runtime)",
                "seconds_per_epoch": seconds / batches * per_epoch,
                "measured": f"{batches} batches ({args.epochs} epochs), {runtime.workers} workers",
            }
        )
    runtime = make_runtime("inline")
    try:
        sample_rows = args.batch_size * args.phe_batches
        seconds, batches = _timed(runtime, args.parties, scheme="phe", rows=sample_rows, epochs=1, **common)
    finally:
        runtime.close()
    slow = seconds / batches * per_epoch
    rows.append(
        {
            "scheme": "phe per-element",
            "seconds_per_epoch": slow,
            "measured": f"{batches} batches, scaled to {per_epoch}",
        }
    )
    fast = min(r["seconds_per_epoch"] for r in rows[:2])
    return {
        "parties": args.parties,
        "key_bits": args.key_bits,
        "train_rows": train_rows,
        "batches_per_epoch": per_epoch,
        "rows": rows,
        "fedcore_seconds_per_epoch": {r["scheme"]: r["seconds_per_epoch"] for r in rows[:2]},
        "phe_seconds_per_epoch_scaled": slow,
        "speedup_best": slow / fast,
    }
