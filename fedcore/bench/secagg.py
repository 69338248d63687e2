"""One SecAgg+ round in simulation, beside the plain sum of the same vectors and two lower bounds.

The secure round runs on fedcore's default simulation engine (``--engine coop``: cooperative
parties spread over ``--workers`` processes, all cores by default; ``--engine threads``
runs every party as a thread of this process instead). All parties draw their input, meet
at a barrier (the aggregator waits for every client's "ready", then says "go"), and the
round is the aggregator's ``secure_sum`` call, start to return. The plain sum runs on
threads, as before.

The keystream lower bound is one thread producing the same number of AES-256-CTR bytes as
all parties' masks together (``fedcore.crypto.prg.keystream_seconds``); the
keystream-plus-key-agreement bound adds one thread doing as many bare X25519 exchanges as all
parties did (``fedcore.crypto.kx.exchange_seconds``): the two costs no implementation of this
protocol avoids, measured on one core. With several worker processes the round can use more
than one core, so the JSON also gives the ratio against that bound split over the workers
(``ratio_round_vs_bound_split_over_workers``). Per-party CPU figures are per-thread CPU
times, meaningful only with ``--engine threads`` (cooperative parties share a thread); with
``coop`` they are null.
``--neighbours K`` sets the graph's degree (Flower's ``num_shares=s`` is ``K = s - 1``).
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument(
        "--neighbours",
        type=int,
        default=None,
        help="graph degree K (default 2*ceil(2*log2 n); Flower's 3 shares: 2)",
    )
    parser.add_argument("--drop", type=int, default=0, help="clients killed right after their masked input")
    parser.add_argument("--engine", choices=["coop", "threads"], default="coop", help="simulation engine")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes of the coop engine (default: all cores)"
    )
    parser.add_argument("--seed", type=int, default=0)


def _mains(args: argparse.Namespace, barrier: threading.Barrier) -> tuple[Any, Any]:
    import numpy as np

    def secure_main(ctx: Any) -> dict[str, Any]:
        x = ctx.rng.normal(size=args.dim).astype(args.dtype)
        barrier.wait()  # every party has its input: the round starts now for all
        return _round(ctx, x, args)

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
    from fedcore.crypto import kx, prg

    # a client dies right after its masked input: its third protocol message (the coop
    # engine's barrier sends one message before the round)
    sends = 3 + (args.engine == "coop")
    kill = {f"p{i}": sends for i in range(1, 1 + args.drop)}
    secure, plain = _simulate(args, kill)
    workers = _workers(args)
    agg = secure.parties["p0"]["stats"]
    clients = [r["stats"] for p, r in secure.parties.items() if p != "p0" and p not in kill]
    client_masks = sum(c.mask_bytes for c in clients)
    mask_total = agg.mask_bytes + client_masks + client_masks // len(clients) * len(kill)  # + the killed
    chunk = args.dim * (4 if args.dtype == "float32" else 8)
    cpu0 = time.thread_time()
    lower = prg.keystream_seconds(mask_total, chunk)
    lower_cpu = time.thread_time() - cpu0
    client_kx = sum(c.agreements for c in clients)
    agreements = agg.agreements + client_kx + client_kx // len(clients) * len(kill)
    kx_s = kx.exchange_seconds(agreements)
    bound = lower + kx_s
    per_thread = args.engine == "threads"  # cooperative parties share a thread: no CPU per party
    round_cpu = agg.compute_s + sum(c.compute_s for c in clients) if per_thread else None
    p0 = plain.parties["p0"]
    return {
        "parties": args.parties,
        "dim": args.dim,
        "dtype": args.dtype,
        "graph_degree": secure.parties["p0"]["degree"],
        "neighbours_option": args.neighbours,
        "dropped_after_masked_input": args.drop,
        "included": len(secure.parties["p0"]["included"]),
        "round_s": agg.wall_s,
        "keystream_lower_bound_s": lower,
        "ratio_round_vs_keystream": agg.wall_s / lower,
        "key_agreements_total": agreements,
        "key_agreement_s": kx_s,
        "keystream_plus_key_agreement_bound_s": bound,
        "ratio_round_vs_bound": agg.wall_s / bound,
        "engine": args.engine,
        "workers": workers,
        "ratio_round_vs_bound_split_over_workers": agg.wall_s / (bound / workers),
        "target_ratio_vs_bound": 2.0,
        "meets_target": agg.wall_s / bound <= 2.0,
        "plain_round_s": p0["wall"],
        "plain_numpy_sum_s": p0["local_sum"],
        "mask_bytes_total": mask_total,
        "round_cpu_s_all_parties": round_cpu,
        "keystream_cpu_s": lower_cpu,
        "ratio_round_cpu_vs_keystream_cpu": None if round_cpu is None else round_cpu / lower_cpu,
        "client_bytes_sent_mean": sum(c.bytes_sent for c in clients) / len(clients),
        "client_cpu_s_mean": sum(c.compute_s for c in clients) / len(clients) if per_thread else None,
        "client_cpu_s_max": max(c.compute_s for c in clients) if per_thread else None,
        "aggregator_cpu_s": agg.compute_s if per_thread else None,
        "aggregator_bytes_sent": agg.bytes_sent,
        "plain_bytes_sent_per_client": args.dim * (4 if args.dtype == "float32" else 8),
        "simulation_s": secure.seconds,
        "rows": _rows(agg, (lower, kx_s), p0, clients if per_thread else [], args),
    }


def _simulate(args: argparse.Namespace, kill: dict[str, int]) -> tuple[Any, Any]:
    from fedcore.runtime import make_runtime
    from fedcore.sim import simulate

    runtime = make_runtime("inline")
    try:
        common = {
            "parties": args.parties,
            "kill": kill,
            "runtime": runtime,
            "timeout_s": 900,
            "seed": args.seed,
        }
        if args.engine == "coop":
            plan = {k: getattr(args, k) for k in _PLAN}
            secure = simulate(
                _secure_party, engine="coop", workers=_workers(args), params={"plan": plan}, **common
            )
        else:
            # the parties meet at a threading.Barrier, so they are threads (a barrier would
            # hold the one OS thread of the cooperative engine)
            secure_main, _ = _mains(args, threading.Barrier(args.parties))
            secure = simulate(secure_main, engine="threads", **common)
        _, plain_main = _mains(args, threading.Barrier(args.parties))
        plain = simulate(
            plain_main, parties=args.parties, runtime=runtime, timeout_s=900, seed=args.seed, engine="threads"
        )
    finally:
        runtime.close()
    unexpected = [e for p, e in secure.errors().items() if p not in kill]
    if unexpected:
        raise RuntimeError(f"secure round failed: {unexpected[0]}")
    return secure, plain


_PLAN = ("parties", "dim", "dtype", "value_range", "graph", "neighbours")


def _workers(args: argparse.Namespace) -> int:
    """The coop engine's worker processes (all cores by default); 1 for threads."""
    if args.engine != "coop":
        return 1
    wanted = int(args.workers or len(os.sched_getaffinity(0)))
    return max(1, min(wanted, int(args.parties)))


def _secure_party(ctx: Any, plan: dict[str, Any]) -> dict[str, Any]:
    """One party of the cooperative round (top level, so worker processes can import it).

    The barrier is messages, not a threading.Barrier: a cooperative party waiting on a lock
    would hold its worker's only OS thread.
    """
    args = argparse.Namespace(**plan)
    x = ctx.rng.normal(size=args.dim).astype(args.dtype)
    aggregator = ctx.parties[0]
    if ctx.party == aggregator:
        ctx.gather("bench-ready", timeout=600)
        ctx.broadcast("bench-go", True)
    else:
        ctx.send(aggregator, "bench-ready", True)
        ctx.recv(aggregator, "bench-go", timeout=600)
    return _round(ctx, x, args)


def _round(ctx: Any, x: Any, args: argparse.Namespace) -> dict[str, Any]:
    """This party's secure_sum of ``x``, as both engines' parties run it once they have met."""
    from fedcore.secagg import secure_sum

    aggregator = ctx.parties[0]
    res = secure_sum(
        ctx,
        x,
        aggregator=aggregator,
        value_range=args.value_range,
        graph=args.graph,
        neighbours=args.neighbours,
        timeout=600,
    )
    return {
        "stats": res.stats,
        "included": res.included,
        "degree": _degree_of(ctx, args) if ctx.party == aggregator else None,
    }


def _degree_of(ctx: Any, args: argparse.Namespace) -> int:
    """The most neighbours any client has in this round's graph (the same setup secure_sum built)."""
    import numpy as np

    from fedcore.crypto import fixedpoint
    from fedcore.secagg.protocol import make_setup

    enc = fixedpoint.plan(
        "float",
        args.parties,
        value_range=args.value_range,
        bits=fixedpoint.default_bits(np.dtype(args.dtype)),
    )
    setup = make_setup(
        job=ctx.job_id,
        round_id="secagg",
        seed=ctx.seed,
        aggregator=ctx.parties[0],
        parties=tuple(ctx.parties),
        dim=args.dim,
        encoding=enc,
        graph=args.graph,
        neighbours=args.neighbours,
    )
    return max(len(n) for n in setup.neighbours.values())


def _rows(
    agg: Any, bounds: tuple[float, float], p0: dict[str, float], clients: list[Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    lower, kx_s = bounds
    bound = lower + kx_s
    engine = f"{args.engine}, {_workers(args)} worker(s)" if args.engine == "coop" else "threads"
    rows = [
        {
            "measure": f"secure round (wall; {engine})",
            "seconds": agg.wall_s,
            "vs keystream": agg.wall_s / lower,
            "vs keystream+kx": agg.wall_s / bound,
        },
        {"measure": "keystream lower bound (AES-256-CTR, 1 core)", "seconds": lower, "vs keystream": 1.0},
        {
            "measure": "keystream + key agreement bound (+ bare X25519, 1 core)",
            "seconds": bound,
            "vs keystream": bound / lower,
            "vs keystream+kx": 1.0,
        },
        {"measure": "plain sum round (wall)", "seconds": p0["wall"], "vs keystream": p0["wall"] / lower},
        {"measure": "plain sum, numpy add only", "seconds": p0["local_sum"]},
    ]
    if clients:  # per-thread CPU: --engine threads only
        rows += [
            {"measure": "client CPU, mean", "seconds": sum(c.compute_s for c in clients) / len(clients)},
            {"measure": "client CPU, max", "seconds": max(c.compute_s for c in clients)},
            {"measure": "aggregator CPU", "seconds": agg.compute_s},
        ]
    return rows
