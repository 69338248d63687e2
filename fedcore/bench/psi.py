"""``fedcore bench psi``: two-party ECDH-PSI against the bare X25519 operations it must do."""

from __future__ import annotations

import argparse
import time
from typing import Any

DESCRIPTION = "two-party ECDH-PSI (X25519) vs the same number of bare X25519 operations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=100_000, help="identifiers per party")
    parser.add_argument("--overlap", type=float, default=0.5, help="fraction of identifiers in common")
    parser.add_argument("--workers", type=int, default=None, help="process workers (default: all cores)")
    parser.add_argument("--batch-items", type=int, default=8192, help="identifiers per curve batch")
    parser.add_argument(
        "--bound-ops", type=int, default=None,
        help="bare X25519 operations to time for the bound (default: all 4*size of them)",
    )


def bare_x25519(count: int) -> int:
    """``count`` X25519 operations as the protocol calls them: load a u-coordinate, multiply."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    exchange = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"k").digest()).exchange
    load = X25519PublicKey.from_public_bytes
    u = bytearray(hashlib.sha256(b"u").digest())
    u[31] &= 0x7F
    point = bytes(u)
    for _ in range(count):
        point = exchange(load(point))
    return count


def _ids(size: int, overlap: int, party: str) -> list[str]:
    return [f"common-{i}" for i in range(overlap)] + [f"{party}-{i}" for i in range(size - overlap)]


def _psi_main(ctx: Any, batch_items: int) -> dict[str, Any]:
    from fedcore.psi import intersect

    common = intersect(ctx, ctx.data("ids"), batch_items=batch_items)
    return {"intersection": len(common or [])}


def _time_bound(runtime: Any, ops: int, batch: int) -> float:
    chunks = [min(batch, ops - start) for start in range(0, ops, batch)]
    start = time.perf_counter()
    runtime.map(bare_x25519, chunks)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fedcore.runtime import make_runtime
    from fedcore.sim import simulate

    size, overlap = args.size, int(args.size * args.overlap)
    total_ops = 4 * size
    bound_ops = min(total_ops, args.bound_ops or total_ops)
    runtime = make_runtime("processes", workers=args.workers)
    try:
        runtime.map(bare_x25519, [1] * runtime.workers)  # start the workers outside the timings
        data = {p: {"ids": _ids(size, overlap, p)} for p in ("p0", "p1")}
        # Half the bound before the PSI and half after, so a change in machine load hits both alike.
        bound_measured = _time_bound(runtime, bound_ops // 2, args.batch_items)
        result = simulate(_psi_main, parties=2, runtime=runtime, data=data, timeout_s=3600,
                          params={"batch_items": args.batch_items})
        if result.errors():
            raise RuntimeError(f"PSI failed: {result.errors()}")
        found = {p: r["intersection"] for p, r in result.parties.items()}
        bound_measured += _time_bound(runtime, bound_ops - bound_ops // 2, args.batch_items)
    finally:
        runtime.close()
    bound = bound_measured * total_ops / bound_ops
    label = "measured" if bound_ops == total_ops else f"scaled from {bound_ops} ops"
    return {
        "size": size,
        "overlap": overlap,
        "workers": runtime.workers,
        "intersection_ok": all(v == overlap for v in found.values()),
        "rows": [
            {"what": "ecdh-psi 2 parties", "ops": total_ops, "seconds": result.seconds, "note": "end-to-end"},
            {"what": "bare X25519 (bound)", "ops": total_ops, "seconds": bound, "note": label},
        ],
        "psi_seconds": result.seconds,
        "bound_seconds": bound,
        "ratio": result.seconds / bound,
        "x25519_ops_per_s": total_ops / bound,
    }
