"""The thread engine: one OS thread per party (``--engine threads``).

Kept for scripts the cooperative engine cannot run safely: a party that waits on another
outside ``ctx`` (a lock held across ``recv``, a queue shared between parties, a thread of its
own that calls ``ctx.recv``), and for ``--transport grpc``, whose receives block in gRPC.
"""

from __future__ import annotations

import threading
import time

from fedcore.results import Outcome
from fedcore.runtime import Runtime
from fedcore.sim._party import Run, killed_before_start
from fedcore.sim.faults import FaultPlan
from fedcore.transport import Transport


def run_threads(
    run: Run, transports: dict[str, Transport], runtime: Runtime, plan: FaultPlan | None
) -> tuple[dict[str, Outcome], float]:
    """Every party's outcome, in party order, and the wall time."""
    results: dict[str, Outcome] = {}
    start = time.perf_counter()
    threads = []
    for name, transport in transports.items():
        if plan is not None and plan.kill.get(name) == 0:
            results[name] = killed_before_start(name, transport)
            continue
        body = run.party(name, transport, runtime, results)
        # daemon: Ctrl-C must not wait for parties blocked in recv
        thread = threading.Thread(target=body, name=f"party-{name}", daemon=True)
        threads.append(thread)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: results[name] for name in transports}, time.perf_counter() - start
