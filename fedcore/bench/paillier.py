"""Paillier vectors: fedcore.he (packed, DJN, CRT, runtime) against per-element phe in the same run."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from fedcore.crypto.secret import ACCESS

DESCRIPTION = (
    "encrypt / add / decrypt / 3-party encrypt-sum-decrypt with fedcore.he vs per-element phe, "
    "and ciphertexts per second per core (packed, unpacked, public key and key owner)"
)

# SecretFlow HEU ZPaillier at 2048 bits, one value per ciphertext, per core-second, as issue 17
# measured it on this machine kind (HEU is not a dependency, so it is not rerun here).
HEU_ZPAILLIER_2048_PER_CORE = {"encrypt": 1350.0, "decrypt": 365.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dim", type=int, default=100_000, help="values per party vector")
    parser.add_argument("--bits", type=int, default=2048, help="Paillier key size")
    parser.add_argument("--parties", type=int, default=3, help="vectors summed end to end")
    parser.add_argument("--workers", type=int, default=None, help="runtime processes (default: cores)")
    parser.add_argument("--phe-sample", type=int, default=40, help="values phe encrypts; rates scaled")
    parser.add_argument("--unpacked-sample", type=int, default=2000, help="values for the unpacked row")
    parser.add_argument(
        "--inline-sample", type=int, default=25_000, help="values decrypted again without the runtime"
    )
    parser.add_argument(
        "--per-core-sample",
        type=int,
        default=1000,
        help="ciphertexts per per-core row (one process, no runtime; decryption rows use 2/5 of it)",
    )


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _tree_cpu_seconds() -> float | None:
    """CPU seconds (user + system) of this process and all its live descendants (Linux /proc)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except (OSError, ValueError, IndexError):
        return None
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[pid][1] for pid in tree if pid in stats) / tick


def _phe_rates(public_key: Any, private_key: Any, sample: int) -> dict[str, float]:
    import numpy as np

    ppk, psk = public_key.to_phe(), private_key.to_phe(ACCESS)  # the phe baseline decrypts with them
    values = np.random.default_rng(1).normal(size=sample).tolist()
    wall, cpu = {}, {}

    def measure(name: str, fn: Any) -> Any:
        cpu_start = time.process_time()
        result, wall[name] = _timed(fn)
        cpu[name] = time.process_time() - cpu_start
        return result

    numbers = measure("encrypt", lambda: [ppk.encrypt(v) for v in values])
    measure("add", lambda: [a + b for a, b in zip(numbers, numbers, strict=True)])
    measure("decrypt", lambda: [psk.decrypt(x) for x in numbers])
    rates = {name: sample / seconds for name, seconds in wall.items()}
    rates.update({f"{name}_cpu_per_value": seconds / sample for name, seconds in cpu.items()})
    return rates


def _fedcore_run(args: argparse.Namespace, runtime: Any, public_key: Any, private_key: Any) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=args.dim) for _ in range(args.parties)]
    cpu_start = _tree_cpu_seconds()
    start = time.perf_counter()
    encrypted, timings = [], []
    for vector in vectors:
        enc, seconds = _timed(lambda v=vector: public_key.encrypt(v, runtime=runtime))
        encrypted.append(enc)
        timings.append(seconds)
    t_add = 0.0
    total = encrypted[0]
    for enc in encrypted[1:]:
        total, seconds = _timed(lambda e=enc, t=total: t + e)
        t_add += seconds
    decrypted, t_dec = _timed(lambda: private_key.decrypt(total, runtime=runtime))
    t_e2e = time.perf_counter() - start
    cpu_end = _tree_cpu_seconds()
    cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
    error = float(np.max(np.abs(decrypted - np.sum(vectors, axis=0)))) if args.dim else 0.0
    return {
        "encrypt": args.dim / timings[0],
        "add": args.dim * max(args.parties - 1, 1) / max(t_add, 1e-9),
        "decrypt": args.dim / t_dec,
        "decrypt_inline": _inline_decrypt_rate(args, total, private_key, decrypted),
        "end_to_end": args.dim / t_e2e,
        "e2e_seconds": t_e2e,
        "e2e_cpu_seconds": cpu,
        "ciphertexts_per_vector": len(encrypted[0].ciphertexts),
        "slots": encrypted[0].layout.slots,
        "max_abs_error": error,
    }


def _inline_decrypt_rate(args: argparse.Namespace, total: Any, private_key: Any, expected: Any) -> float:
    """Values/s of decrypting (a prefix of) ``total`` in this process alone, checked against the runtime's."""
    slots = total.layout.slots
    count = min(len(total.ciphertexts), -(-args.inline_sample // slots))
    length = min(count * slots, total.length)
    prefix = total._derive(total._cts[:count], length=length, runtime=None)
    values, seconds = _timed(lambda: private_key.decrypt(prefix))
    if not (values == expected[:length]).all():
        raise AssertionError("inline decryption differs from decryption on the runtime")
    return float(length) / seconds


def _cpu_timed(fn: Any) -> tuple[Any, float, float]:
    """fn's value, wall seconds and this process's CPU seconds."""
    cpu = time.process_time()
    value, wall = _timed(fn)
    return value, wall, time.process_time() - cpu


def _per_core_rates(args: argparse.Namespace, public_key: Any, private_key: Any) -> list[dict[str, Any]]:
    """Ciphertexts per second in this one process (no runtime): one core's worth of each operation.

    Each operation is checked against the plain values it must give back, so a rate is
    never one of wrong results. Tables are built first (not timed), as any long run has them.
    """
    import numpy as np

    count, bits = max(args.per_core_sample, 1), public_key.bits
    decrypt_count = max(count * 2 // 5, 1)
    rng = np.random.default_rng(3)
    rows = []
    for packed in (False, True):
        slots = public_key.encrypt(np.zeros(1), packed=packed).layout.slots
        private_key.encrypt(np.zeros(1), packed=packed)  # the owner's tables, untimed
        values = rng.normal(size=count * slots)
        mode = "packed" if packed else "unpacked"
        by_public, wall, cpu = _cpu_timed(lambda v=values, k=packed: public_key.encrypt(v, packed=k))
        rows.append(_per_core_row(f"encrypt ({mode}, public key)", count, wall, cpu, slots, "encrypt", bits))
        by_owner, wall, cpu = _cpu_timed(lambda v=values, k=packed: private_key.encrypt(v, packed=k))
        rows.append(
            _per_core_row(f"encrypt ({mode}, key owner, CRT)", count, wall, cpu, slots, "encrypt", bits)
        )
        total = by_public + by_owner
        prefix = total._derive(total._cts[:decrypt_count], length=decrypt_count * slots, runtime=None)
        plain, wall, cpu = _cpu_timed(lambda p=prefix: private_key.decrypt(p))
        if np.max(np.abs(plain - 2 * values[: decrypt_count * slots])) > 2.0**-18:
            raise AssertionError(f"per-core {mode} round trip decrypted to wrong values")
        rows.append(_per_core_row(f"decrypt ({mode}, CRT)", decrypt_count, wall, cpu, slots, "decrypt", bits))
    return rows


def _per_core_row(
    operation: str, cts: int, wall: float, cpu: float, slots: int, kind: str, bits: int
) -> dict[str, Any]:
    per_core = cts / max(cpu, 1e-9)
    row = {
        "operation": operation,
        "ct/s per core (CPU)": per_core,
        "ct/s 1 process (wall)": cts / max(wall, 1e-9),
        "values/s per core": per_core * slots,
        "slots": slots,
    }
    if slots == 1 and bits == 2048:
        row["vs HEU per core"] = per_core / HEU_ZPAILLIER_2048_PER_CORE[kind]
    return row


def _row(operation: str, ours: float, theirs: float, basis: str, workers: int) -> dict[str, Any]:
    return {
        "operation": operation,
        "fedcore values/s": ours,
        "phe values/s": theirs,
        "phe basis": basis,
        "speedup": ours / theirs,
        "speedup vs phe on all cores": ours / (theirs * workers),
    }


def _rows(
    args: argparse.Namespace, ours: dict[str, Any], phe: dict[str, float], unpacked: float, workers: int
) -> list[dict[str, Any]]:
    phe_e2e = 1.0 / (args.parties / phe["encrypt"] + (args.parties - 1) / phe["add"] + 1 / phe["decrypt"])
    basis = f"1 process, sample of {args.phe_sample} values, scaled"
    return [
        _row("encrypt (packed)", ours["encrypt"], phe["encrypt"], basis, workers),
        _row("add (packed)", ours["add"], phe["add"], basis, workers),
        _row("decrypt (packed, CRT)", ours["decrypt"], phe["decrypt"], basis, workers),
        _row(
            f"end-to-end {args.parties}-party encrypt-sum-decrypt",
            ours["end_to_end"],
            phe_e2e,
            basis,
            workers,
        ),
        _row("encrypt (unpacked, DJN)", unpacked, phe["encrypt"], basis, workers),
        _row(
            f"decrypt (packed, CRT) in 1 process, first {args.inline_sample} values",
            ours["decrypt_inline"],
            phe["decrypt"],
            basis,
            1,
        ),
    ]


def _per_cpu_second(args: argparse.Namespace, ours: dict[str, Any], phe: dict[str, float]) -> dict[str, Any]:
    """End-to-end values per CPU-second (all our processes) vs phe's: robust to a loaded machine."""
    cpu = ours["e2e_cpu_seconds"]
    phe_cpu_per_value = (
        args.parties * phe["encrypt_cpu_per_value"]
        + (args.parties - 1) * phe["add_cpu_per_value"]
        + phe["decrypt_cpu_per_value"]
    )
    return {
        "fedcore_e2e_cpu_seconds_all_processes": cpu,
        "fedcore_e2e_values_per_cpu_second": args.dim / cpu if cpu else None,
        "phe_e2e_values_per_cpu_second (sampled, scaled)": 1 / phe_cpu_per_value,
        "speedup_per_cpu_second": args.dim / cpu / (1 / phe_cpu_per_value) if cpu else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fedcore.he import generate_keypair
    from fedcore.runtime import make_runtime

    load_before = os.getloadavg()[0]
    (public_key, private_key), t_keygen = _timed(lambda: generate_keypair(args.bits))
    with make_runtime("processes", workers=args.workers) as runtime:
        warm = np.zeros(64 * 48 * runtime.workers)
        _, t_setup = _timed(
            lambda: private_key.decrypt(public_key.encrypt(warm, runtime=runtime), runtime=runtime)
        )
        private_key.encrypt(warm, runtime=runtime)  # the owner's tables in every worker, untimed
        ours = _fedcore_run(args, runtime, public_key, private_key)
        sample = np.random.default_rng(2).normal(size=args.unpacked_sample)
        _, t_unpacked = _timed(lambda: public_key.encrypt(sample, packed=False, runtime=runtime))
        _, t_owner = _timed(lambda: private_key.encrypt(sample, packed=False, runtime=runtime))
        workers = runtime.workers
    per_core = _per_core_rates(args, public_key, private_key)
    phe = _phe_rates(public_key, private_key, args.phe_sample)
    rows = _rows(args, ours, phe, args.unpacked_sample / t_unpacked, workers)
    basis = f"1 process, sample of {args.phe_sample} values, scaled"
    rows.append(
        _row(
            "encrypt (unpacked, key owner, CRT)",
            args.unpacked_sample / t_owner,
            phe["encrypt"],
            basis,
            workers,
        )
    )
    per_cpu = _per_cpu_second(args, ours, phe)
    phe_per_core = {"encrypt": 1 / phe["encrypt_cpu_per_value"], "decrypt": 1 / phe["decrypt_cpu_per_value"]}
    return {
        "dim": args.dim,
        "key_bits": args.bits,
        "parties": args.parties,
        "workers": workers,
        "slots_per_ciphertext": ours["slots"],
        "ciphertexts_per_vector": ours["ciphertexts_per_vector"],
        "keygen_seconds": t_keygen,
        "pool_and_table_setup_seconds": t_setup,
        "end_to_end_seconds": ours["e2e_seconds"],
        "decrypt_speedup_runtime_vs_inline": ours["decrypt"] / ours["decrypt_inline"],
        "max_abs_error_of_sum": ours["max_abs_error"],
        "load_average_1m_before_after": [load_before, os.getloadavg()[0]],
        "cpu_time_basis (robust to a loaded machine)": per_cpu,
        "per_core": {
            "basis": "one process, no runtime, CPU seconds of this process; 1 ciphertext = slots values",
            "unpacked_runtime_per_worker_ciphertexts_per_second": {
                "public key": args.unpacked_sample / t_unpacked / workers,
                "key owner": args.unpacked_sample / t_owner / workers,
            },
            "phe_per_core_values_per_second": phe_per_core,
            "heu_zpaillier_2048_per_core (issue 17 figure, not rerun; 'vs HEU per core')": (
                HEU_ZPAILLIER_2048_PER_CORE
            ),
            "ciphertexts_per_core_second": {row["operation"]: row["ct/s per core (CPU)"] for row in per_core},
        },
        "rows": rows + per_core,
    }
