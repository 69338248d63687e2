"""``fedcore bench psi``: two-party ECDH-PSI against the bare X25519 operations it must do."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

DESCRIPTION = "two-party ECDH-PSI (X25519) vs the same number of bare X25519 operations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=100_000, help="identifiers per party")
    parser.add_argument("--overlap", type=float, default=0.5, help="fraction of identifiers in common")
    parser.add_argument("--workers", type=int, default=None, help="process workers (default: all cores)")
    parser.add_argument("--batch-items", type=int, default=8192, help="identifiers per curve batch")
    parser.add_argument(
        "--bound-ops",
        type=int,
        default=None,
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


def tree_cpu_seconds() -> float | None:
    """CPU seconds (user + system) used so far by this process and all its descendants (Linux /proc).

    Process-pool workers hang off a forkserver, so ``os.times`` would miss them. Returns None
    where /proc is not available.
    """
    try:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        fields = f.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def _time_bound(runtime: Any, ops: int, batch: int) -> tuple[float, float]:
    chunks = [min(batch, ops - start) for start in range(0, ops, batch)]
    cpu, start = tree_cpu_seconds() or 0.0, time.perf_counter()
    runtime.map(bare_x25519, chunks)
    return time.perf_counter() - start, (tree_cpu_seconds() or 0.0) - cpu


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
        wall_a, cpu_a = _time_bound(runtime, bound_ops // 2, args.batch_items)
        cpu_start = tree_cpu_seconds() or 0.0
        result = simulate(
            _psi_main,
            parties=2,
            runtime=runtime,
            data=data,
            timeout_s=3600,
            params={"batch_items": args.batch_items},
        )
        psi_cpu = (tree_cpu_seconds() or 0.0) - cpu_start
        if result.errors():
            raise RuntimeError(f"PSI failed: {result.errors()}")
        found = {p: r["intersection"] for p, r in result.parties.items()}
        wall_b, cpu_b = _time_bound(runtime, bound_ops - bound_ops // 2, args.batch_items)
    finally:
        runtime.close()
    scale = total_ops / bound_ops
    label = "measured" if bound_ops == total_ops else f"scaled from {bound_ops} ops"
    return _report(
        size,
        overlap,
        runtime.workers,
        found,
        total_ops,
        label,
        (result.seconds, psi_cpu),
        ((wall_a + wall_b) * scale, (cpu_a + cpu_b) * scale),
    )


def _report(
    size: int,
    overlap: int,
    workers: int,
    found: dict[str, int],
    ops: int,
    label: str,
    psi: tuple[float, float],
    bound: tuple[float, float],
) -> dict[str, Any]:
    """Wall and CPU seconds side by side; CPU seconds / workers is the wall time on idle cores."""
    return {
        "size": size,
        "overlap": overlap,
        "workers": workers,
        "intersection_ok": all(v == overlap for v in found.values()),
        "rows": [
            {
                "what": "ecdh-psi 2 parties",
                "ops": ops,
                "seconds": psi[0],
                "cpu_seconds": psi[1],
                "note": "end-to-end",
            },
            {
                "what": "bare X25519 (bound)",
                "ops": ops,
                "seconds": bound[0],
                "cpu_seconds": bound[1],
                "note": label,
            },
        ],
        "psi_seconds": psi[0],
        "bound_seconds": bound[0],
        "ratio": psi[0] / bound[0],
        "cpu_ratio": psi[1] / bound[1] if bound[1] else None,
        "x25519_ops_per_s": ops / bound[0],
        "x25519_ops_per_cpu_s": ops / bound[1] if bound[1] else None,
    }
