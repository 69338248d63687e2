"""``fedcore bench secureboost``: seconds per tree, fedcore vs per-element ``phe`` and central scikit-learn.

fedcore's tree is measured whole (two parties in simulation, real Paillier, the host's
histograms on the runtime). The per-element ``phe`` tree is the same tree with one
``phe`` ciphertext per g and per h (no packing, no DJN tables): its encryptions,
ciphertext additions and decryptions are counted from fedcore's run, each kind is timed
on a sample, and the counts are scaled by those times, as ``bench paillier`` does.
``speedup_vs_phe`` counts one phe addition per row, feature and g or h (a per-element
histogram, as FATE 1.x builds it); ``speedup_vs_phe_same_kernel`` gives phe fedcore's
(bin, bin)-cell kernel too (its real multiplication count), which isolates the crypto.
fedcore's guest decrypts bin sums several to one exponentiation; phe is charged one
decryption per g and per h sum, as it would make.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

DESCRIPTION = "SecureBoost: seconds per tree with fedcore (packed Paillier) vs per-element phe and sklearn"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--guest-features", type=int, default=10)
    parser.add_argument("--host-features", type=int, default=100)
    parser.add_argument("--trees", type=int, default=1, help="trees to time (seconds are per tree)")
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--bins", type=int, default=32)
    parser.add_argument("--key-bits", type=int, default=1024, help="Paillier modulus bits (both schemes)")
    parser.add_argument("--workers", type=int, default=None, help="process workers (default: all cores)")
    parser.add_argument("--phe-samples", type=int, default=200, help="phe encryptions/decryptions to time")


def _data(args: Any) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    features = args["guest_features"] + args["host_features"]
    x, y = make_classification(
        n_samples=args["rows"], n_features=features, n_informative=min(20, features), random_state=0
    )
    return np.asarray(x), np.asarray(y)


def _party_main(ctx: Any, plan: dict[str, Any]) -> dict[str, Any]:
    from fedcore import he
    from fedcore.vertical import _sb_driver as D
    from fedcore.vertical._sb_binning import fit_binner
    from fedcore.vertical._sb_crypto import PaillierScheme
    from fedcore.vertical._sb_protocol import GuestSession, HostSession
    from fedcore.vertical._sb_tree import BoostParams

    x, y = _data(plan)
    g = plan["guest_features"]
    cols = slice(0, g) if ctx.party == ctx.parties[0] else slice(g, None)
    params = BoostParams(
        trees=plan["trees"], max_depth=plan["max_depth"], bins=plan["bins"], learning_rate=0.1
    )
    binner = fit_binner(x[:, cols], params.bins, ctx.rng)
    bins = binner.transform(x[:, cols])
    validation = np.zeros(len(x), dtype=bool)
    rng = np.random.default_rng(int.from_bytes(os.urandom(16), "big"))
    if ctx.party == ctx.parties[0]:
        session: Any = GuestSession(
            ctx.party,
            ctx.others,
            bins,
            binner,
            y,
            validation,
            params,
            PaillierScheme(*he.generate_keypair(plan["key_bits"])),
            ctx.rng,
            ctx.runtime,
        )
    else:
        session = HostSession(
            ctx.party, ctx.parties[0], bins, binner, validation, params, "paillier", ctx.rng, rng, ctx.runtime
        )
        session.count_multiplications = True
    # both parties have their data binned before either clock starts: the guest's tree
    # would otherwise wait for the host's setup and count it
    for other in ctx.others:
        ctx.send(other, "bench-ready", True)
    for other in ctx.others:
        ctx.recv(other, "bench-ready", timeout=600)
    start = time.perf_counter()
    D._drive(ctx, session, 7200, params.trees)
    out = {"seconds": time.perf_counter() - start}
    if isinstance(session, HostSession):
        out.update(session.work)
    return out


def _phe_seconds(key_bits: int, samples: int) -> dict[str, float]:
    """Seconds per per-element phe encryption, addition and decryption (fixed exponent, as FATE 1.x)."""
    import phe

    public, private = phe.generate_paillier_keypair(n_length=key_bits)
    values = np.random.default_rng(0).uniform(-1, 1, samples)
    start = time.perf_counter()
    numbers = [public.encrypt(phe.EncodedNumber.encode(public, float(v), 2.0**-32)) for v in values]
    encrypt = (time.perf_counter() - start) / samples
    start = time.perf_counter()
    total = numbers[0]
    for _ in range(20):
        for n in numbers:
            total = total + n
    add = (time.perf_counter() - start) / (20 * samples)
    start = time.perf_counter()
    for n in numbers:
        private.decrypt(n)
    decrypt = (time.perf_counter() - start) / samples
    return {"encrypt": encrypt, "add": add, "decrypt": decrypt}


def _sklearn_seconds(plan: dict[str, Any]) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _data(plan)
    model = HistGradientBoostingClassifier(
        max_iter=plan["trees"],
        max_depth=plan["max_depth"],
        max_bins=plan["bins"],
        max_leaf_nodes=None,
        early_stopping=False,
    )
    start = time.perf_counter()
    model.fit(x, y)
    return (time.perf_counter() - start) / int(plan["trees"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fedcore.runtime import make_runtime
    from fedcore.sim import simulate

    plan = {
        "rows": args.rows,
        "guest_features": args.guest_features,
        "host_features": args.host_features,
        "trees": args.trees,
        "max_depth": args.max_depth,
        "bins": args.bins,
        "key_bits": args.key_bits,
    }
    runtime = make_runtime("processes", workers=args.workers)
    try:
        runtime.map(abs, list(range(runtime.workers)))  # start the workers outside the timings
        result = simulate(_party_main, parties=2, runtime=runtime, params={"plan": plan}, timeout_s=7200)
    finally:
        runtime.close()
    if result.errors():
        raise RuntimeError(f"SecureBoost bench failed: {result.errors()}")
    host = result.parties["p1"]
    fedcore_s = max(r["seconds"] for r in result.parties.values()) / args.trees
    unit = _phe_seconds(args.key_bits, args.phe_samples)
    # per-element phe: g and h each their own ciphertext, so twice every count of packed work
    phe_s = (
        2
        * (
            host["encrypted"] * unit["encrypt"]
            + host["additions"] * unit["add"]
            + host["sums"] * unit["decrypt"]
        )
        / args.trees
    )
    # the same, had phe also summed rows into (bin, bin) cells as fedcore's kernel does
    phe_kernel_s = (
        2
        * (
            host["encrypted"] * unit["encrypt"]
            + host["multiplications"] * unit["add"]
            + host["sums"] * unit["decrypt"]
        )
        / args.trees
    )
    sklearn_s = _sklearn_seconds(plan)
    return {
        "rows": [
            {
                "scheme": f"fedcore (packed g/h, {runtime.workers} workers)",
                "seconds_per_tree": fedcore_s,
                "measured": "whole trees",
            },
            {
                "scheme": "per-element phe",
                "seconds_per_tree": phe_s,
                "measured": f"{args.phe_samples} samples per operation, scaled to fedcore's counts",
            },
            {
                "scheme": "per-element phe, fedcore's cell kernel",
                "seconds_per_tree": phe_kernel_s,
                "measured": "as above, with the additions fedcore's kernel makes",
            },
            {
                "scheme": "central sklearn HistGradientBoosting",
                "seconds_per_tree": sklearn_s,
                "measured": "whole trees, plaintext, one machine",
            },
        ],
        "speedup_vs_phe": phe_s / fedcore_s,
        "speedup_vs_phe_same_kernel": phe_kernel_s / fedcore_s,
        "slowdown_vs_sklearn": fedcore_s / sklearn_s,
        "work_per_tree": {
            k: host[k] / args.trees for k in ("encrypted", "additions", "multiplications", "sums")
        },
        "phe_seconds_per_op": unit,
        "key_bits": args.key_bits,
        "plan": plan,
    }
