"""Runtime backends compared on one job: Paillier encryption of a 100,000-value vector."""

from __future__ import annotations

import argparse
import time
from typing import Any

DESCRIPTION = "processes vs ray runtime: packed Paillier encryption of a 100,000-value vector"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dim", type=int, default=100_000, help="values in the vector")
    parser.add_argument("--bits", type=int, default=2048, help="Paillier key size")
    parser.add_argument("--workers", type=int, default=None, help="workers per backend (default: cores)")
    parser.add_argument("--repeats", type=int, default=2, help="timed encryptions per backend (best kept)")
    parser.add_argument(
        "--backends", default="processes,ray", help="comma-separated runtime backends (first is the baseline)"
    )
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local instance)")
    parser.add_argument("--unpacked", action="store_true", help="one value per ciphertext instead of packed")


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _backend_row(
    backend: str, args: argparse.Namespace, keys: tuple[Any, Any], vector: Any, workers: int
) -> dict[str, Any]:
    """Start the backend, warm every worker, then time ``repeats`` encryptions of ``vector``."""
    import numpy as np

    from fedcore.runtime import make_runtime

    public_key, private_key = keys
    packed = not args.unpacked
    options = {"address": args.address} if backend == "ray" and args.address else {}
    start = time.perf_counter()
    with make_runtime(backend, workers=workers, **options) as runtime:
        warm = vector[: min(len(vector), 48 * 4 * workers)]
        public_key.encrypt(warm, packed=packed, runtime=runtime)
        startup_s = time.perf_counter() - start
        times, encrypted = [], None
        for _ in range(max(1, args.repeats)):
            encrypted, seconds = _timed(lambda: public_key.encrypt(vector, packed=packed, runtime=runtime))
            times.append(seconds)
        assert encrypted is not None
        decrypted, decrypt_s = _timed(lambda: private_key.decrypt(encrypted, runtime=runtime))
    best = min(times)
    return {
        "backend": backend,
        "workers": workers,
        "startup_s": round(startup_s, 3),
        "encrypt_s": round(best, 3),
        "encrypt_runs_s": [round(t, 3) for t in times],
        "values_per_s": round(len(vector) / best),
        "ciphertexts": len(encrypted.ciphertexts) if hasattr(encrypted, "ciphertexts") else None,
        "decrypt_s": round(decrypt_s, 3),
        "max_abs_error": float(np.max(np.abs(np.asarray(decrypted) - vector))),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fedcore.errors import ConfigError
    from fedcore.he import generate_keypair
    from fedcore.runtime._base import default_workers

    workers = args.workers or default_workers()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    keys, keygen_s = _timed(lambda: generate_keypair(args.bits))
    vector = np.random.default_rng(0).normal(size=args.dim)
    rows = []
    for backend in backends:
        try:
            rows.append(_backend_row(backend, args, keys, vector, workers))
        except ConfigError as exc:  # e.g. Ray not installed: say so in the table, measure the rest
            rows.append({"backend": backend, "error": str(exc)})
    timed = [row for row in rows if "encrypt_s" in row]
    for row in timed:
        row["vs_" + timed[0]["backend"]] = round(timed[0]["encrypt_s"] / row["encrypt_s"], 2)
    return {
        "dim": args.dim,
        "key_bits": args.bits,
        "packed": not args.unpacked,
        "keygen_s": round(keygen_s, 3),
        "note": "encrypt_s is the best of --repeats runs after a warm-up; startup_s includes "
        "starting the pool or Ray and the warm-up encryption",
        "rows": rows,
    }
