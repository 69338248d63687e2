"""One SecAgg+ round in simulation, beside the plain sum of the same vectors and the keystream bound."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

DESCRIPTION = "SecAgg+ round wall time vs plain sum and the AES-256-CTR keystream lower bound"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parties", type=int, default=100, help="parties, aggregator included (default 100)")
    parser.add_argument("--dim", type=int, default=1_000_000, help="vector length (default 1,000,000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--value-range", type=float, default=8.0, help="fixed-point range (inputs: N(0,1))")
    parser.add_argument("--graph", choices=["auto", "complete", "sparse"], default="auto")
    parser.add_argument("--drop", type=int, default=0, help="clients killed right after their masked input")
    parser.add_argument("--seed", type=int, default=0)


def _mains(args: argparse.Namespace, barrier: threading.Barrier) -> tuple[Any, Any]:
    import numpy as np

    from fedcore.secagg import secure_sum

    def secure_main(ctx: Any) -> dict[str, Any]:
        x = ctx.rng.normal(size=args.dim).astype(args.dtype)
        barrier.wait()  # every party has its input: the round starts now for all
        res = secure_sum(ctx, x, aggregator=ctx.parties[0], value_range=args.value_range, graph=args.graph,
                         timeout=600)
        return {"stats": res.stats, "included": res.included}

    def plain_main(ctx: Any) -> dict[str, Any]:
        x = ctx.rng.normal(size=args.dim).astype(args.dtype)
        barrier.wait()
        start = time.perf_counter()
        if ctx.party != ctx.parties[0]:
            ctx.send(ctx.parties[0], "x", x)
            return {}
        values = ctx.gather("x", timeout=600)
        local = time.perf_counter()
        total = x.astype(np.float64)
        for v in values.values():
            total += v
        end = time.perf_counter()
        return {"wall": end - start, "local_sum": end - local}

    return secure_main, plain_main


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fedcore.crypto import prg
    from fedcore.runtime import make_runtime
    from fedcore.secagg.protocol import sparse_degree
    from fedcore.sim import simulate

    kill = {f"p{i}": 3 for i in range(1, 1 + args.drop)}
    runtime = make_runtime("inline")
    try:
        secure_main, _ = _mains(args, threading.Barrier(args.parties))
        secure = simulate(secure_main, parties=args.parties, kill=kill, runtime=runtime, timeout_s=900,
                          seed=args.seed)
        _, plain_main = _mains(args, threading.Barrier(args.parties))
        plain = simulate(plain_main, parties=args.parties, runtime=runtime, timeout_s=900, seed=args.seed)
    finally:
        runtime.close()
    errors = secure.errors()
    unexpected = {p: e for p, e in errors.items() if p not in kill}
    if unexpected:
        raise RuntimeError(f"secure round failed: {next(iter(unexpected.values()))}")
    agg = secure.parties["p0"]["stats"]
    clients = [r["stats"] for p, r in secure.parties.items() if p != "p0" and p not in kill]
    mask_total = agg.mask_bytes + sum(c.mask_bytes for c in clients)
    mask_total += sum(c.mask_bytes for c in clients) // max(1, len(clients)) * len(kill)  # the killed ones
    word_bytes = 4 if args.dtype == "float32" else 8
    lower = prg.keystream_seconds(mask_total, args.dim * word_bytes)
    p0 = plain.parties["p0"]
    n_clients = args.parties - 1
    degree = n_clients - 1 if args.graph == "complete" or (
        args.graph == "auto" and n_clients <= 3 * sparse_degree(n_clients)) else sparse_degree(n_clients)
    rows = [
        {"measure": "secure round (aggregator wall)", "seconds": agg.wall_s,
         "vs keystream bound": agg.wall_s / lower},
        {"measure": "keystream lower bound (AES-256-CTR, 1 core)", "seconds": lower,
         "vs keystream bound": 1.0},
        {"measure": "plain sum round (wall)", "seconds": p0["wall"],
         "vs keystream bound": p0["wall"] / lower},
        {"measure": "plain sum, numpy add only", "seconds": p0["local_sum"]},
        {"measure": "client compute, mean", "seconds": sum(c.compute_s for c in clients) / len(clients)},
        {"measure": "client compute, max", "seconds": max(c.compute_s for c in clients)},
        {"measure": "aggregator compute", "seconds": agg.compute_s},
    ]
    return {
        "parties": args.parties, "dim": args.dim, "dtype": args.dtype, "graph_degree": degree,
        "dropped_after_masked_input": args.drop, "included": len(secure.parties["p0"]["included"]),
        "round_s": agg.wall_s, "keystream_lower_bound_s": lower,
        "ratio_round_vs_keystream": agg.wall_s / lower,
        "plain_round_s": p0["wall"], "plain_numpy_sum_s": p0["local_sum"],
        "mask_bytes_total": mask_total,
        "client_bytes_sent_mean": sum(c.bytes_sent for c in clients) / len(clients),
        "client_compute_s_mean": sum(c.compute_s for c in clients) / len(clients),
        "aggregator_compute_s": agg.compute_s, "aggregator_bytes_sent": agg.bytes_sent,
        "simulation_s": secure.seconds, "rows": rows,
    }
