"""The cooperative engine: parties as greenlets, spread over worker processes.

Theory of operation. The parties are cut into ``workers`` contiguous blocks. With one block
everything runs here, on one ``Hub`` (see ``fedcore.sim._hub``). With more, each block runs in
a forked worker process with its own hub and its own runtime; the workers are joined by a full
mesh of pipes:

- A party's message to a party of its own block goes straight into that mailbox; to another
  block, the sender's ``FaultyNetwork`` (same sequence numbers, same ``FaultPlan`` dice, kills
  and delays as in one process) forwards ``(src, dst, tag, seq, payload)`` down the pipe,
  and a reader thread at the other end hands it to its hub, which delivers it.
- A party finishing or dropping is written to every other worker after the messages it sent,
  on the same pipes, so "sent before it stopped" still means "delivered".
- Each worker streams its parties' latest progress to the parent, then their outcomes. The
  parent only waits, draws progress and, on any exit path (an error, Ctrl-C, a signal),
  stops every worker: no process of a simulation outlives ``simulate``.

Frames between workers are msgpack headers plus raw payload bytes: nothing is unpickled
between workers. Outcomes go to the parent pickled, from processes this function forked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import msgpack

from fedcore.context import ProgressEvent
from fedcore.errors import FedcoreError
from fedcore.results import Outcome, RemoteError
from fedcore.runtime import Runtime, make_runtime
from fedcore.runtime._base import BACKENDS
from fedcore.sim._exit import die_with_parent, stop_descendants, stop_helpers
from fedcore.sim._hub import CoopRuntime, Hub
from fedcore.sim._party import Run, killed_before_start
from fedcore.sim.faults import FaultPlan, FaultyNetwork

PROGRESS_EVERY_S = 0.5
_MESSAGE, _STATUS = 0, 1


def default_workers(parties: int, runtime: Runtime) -> int:
    """One process below 2,000 parties (a fork costs more than it saves); else one per core."""
    if parties < 2000 or runtime.name not in BACKENDS or runtime.name == "ray":
        return 1
    return max(1, min(os.cpu_count() or 1, parties // 1000))


def run_coop(
    run: Run,
    names: tuple[str, ...],
    runtime: Runtime,
    plan: FaultPlan | None,
    workers: int,
    script: tuple[str, str] | None = None,
) -> tuple[dict[str, Outcome], float]:
    """Every party's outcome, in party order, and the wall time."""
    start = time.perf_counter()
    if workers <= 1:
        results = _run_block(run, names, names, runtime, plan, None)
    else:
        results = _run_workers(run, names, runtime, plan, workers, script)
    return {name: results[name] for name in names}, time.perf_counter() - start


def _run_block(
    run: Run,
    names: tuple[str, ...],
    block: Sequence[str],
    runtime: Runtime,
    plan: FaultPlan | None,
    mesh: _Mesh | None,
) -> dict[str, Outcome]:
    """Run the parties of ``block`` on one hub until every one of them has ended."""
    hub = Hub()
    network = _ShardNetwork(names, plan, hub, block, mesh)
    if mesh is not None:
        mesh.start(hub, network)
    view = CoopRuntime(hub, runtime)
    results: dict[str, Outcome] = {}
    for name in block:
        transport = network.transport(name)
        if plan is not None and plan.kill.get(name) == 0:
            results[name] = killed_before_start(name, transport)
            continue
        hub.spawn(run.party(name, transport, view, results))
    hub.run(keep_timers=mesh is not None)
    return results


class _ShardNetwork(FaultyNetwork):
    """A ``FaultyNetwork`` holding one block's mailboxes; the rest are reached over the mesh."""

    def __init__(
        self,
        names: tuple[str, ...],
        plan: FaultPlan | None,
        hub: Hub,
        block: Sequence[str],
        mesh: _Mesh | None,
    ):
        forward = None if mesh is None else mesh.forward
        super().__init__(names, plan, scheduler=hub, local=block, forward=forward)
        self._mesh = mesh
        self._here = frozenset(block)

    def announce(self, party: str, status: str, step: str | None, reason: str) -> None:
        super().announce(party, status, step, reason)
        if self._mesh is not None and self.home_here(party):
            self._mesh.status(party, status, step, reason)

    def home_here(self, party: str) -> bool:
        return party in self._here

    def deliver_here(self, src: str, dst: str, tag: str, seq: int, payload: bytes) -> None:
        self.mailbox(dst).deliver(src, tag, seq, payload)


class _Mesh:
    """One worker's pipes to the other workers, and who hosts which party."""

    def __init__(self, me: int, peers: dict[int, Connection], home: dict[str, int]):
        self.me, self.peers, self.home = me, peers, home
        self._hub: Hub | None = None
        self._network: _ShardNetwork | None = None
        self._gone: set[int] = set()

    def forward(self, src: str, dst: str, tag: str, seq: int, payload: bytes) -> None:
        self._send(self.home[dst], msgpack.packb([_MESSAGE, src, dst, tag, seq]), payload)

    def status(self, party: str, status: str, step: str | None, reason: str) -> None:
        header = msgpack.packb([_STATUS, party, status, step, reason])
        for worker in self.peers:
            self._send(worker, header, None)

    def _send(self, worker: int, header: bytes, payload: bytes | None) -> None:
        if worker in self._gone:
            return
        conn = self.peers[worker]
        try:
            conn.send_bytes(header)
            if payload is not None:
                conn.send_bytes(payload)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self._gone.add(worker)  # that worker's parties have all ended: nobody reads it

    def start(self, hub: Hub, network: _ShardNetwork) -> None:
        self._hub, self._network = hub, network
        for conn in self.peers.values():
            threading.Thread(target=self._read, args=(conn,), daemon=True, name="sim-mesh").start()

    def _read(self, conn: Connection) -> None:
        hub, network = self._hub, self._network
        assert hub is not None and network is not None  # start() set them
        try:
            while True:
                kind, *fields = msgpack.unpackb(conn.recv_bytes())
                if kind == _MESSAGE:
                    payload = conn.recv_bytes()
                    src, dst, tag, seq = fields
                    hub.call_soon_threadsafe(
                        functools.partial(network.deliver_here, src, dst, tag, seq, payload)
                    )
                else:
                    party, status, step, reason = fields
                    hub.call_soon_threadsafe(
                        functools.partial(network.board.set, party, status, step, reason)
                    )
        except (EOFError, OSError):
            return


def blocks(names: tuple[str, ...], workers: int) -> list[tuple[str, ...]]:
    """``names`` cut into ``workers`` contiguous blocks of nearly equal size."""
    size, extra = divmod(len(names), workers)
    out, at = [], 0
    for i in range(workers):
        n = size + (1 if i < extra else 0)
        out.append(names[at : at + n])
        at += n
    return [b for b in out if b]


def _run_workers(
    run: Run,
    names: tuple[str, ...],
    runtime: Runtime,
    plan: FaultPlan | None,
    workers: int,
    script: tuple[str, str] | None,
) -> dict[str, Outcome]:
    parts = blocks(names, workers)
    home = {name: i for i, block in enumerate(parts) for name in block}
    pipes = {
        (i, j): multiprocessing.Pipe(duplex=True) for i in range(len(parts)) for j in range(i + 1, len(parts))
    }
    context = multiprocessing.get_context("fork")  # the script's main and its closures go as they are
    inner = (runtime.name, max(1, runtime.workers // len(parts)))
    procs: list[Any] = []
    uplinks: list[Connection] = []
    every_end = [conn for pair in pipes.values() for conn in pair]
    with _stopping(procs):
        for i, block in enumerate(parts):
            mine = {j: pipes[min(i, j), max(i, j)][0 if i < j else 1] for j in range(len(parts)) if j != i}
            up, down = context.Pipe(duplex=False)
            # a fork inherits every end: the child closes the others', or no pipe ever reads EOF
            others = [c for c in every_end if c not in mine.values()] + uplinks + [up]
            proc = context.Process(
                target=_worker_main,
                args=(
                    run,
                    names,
                    block,
                    inner,
                    script,
                    plan,
                    _Mesh(i, mine, home),
                    down,
                    others,
                    os.getpid(),
                ),
                name=f"fedcore-sim-worker-{i}",  # not daemonic: its runtime may start a pool
            )
            proc.start()
            down.close()
            procs.append(proc)
            uplinks.append(up)
        for pair in pipes.values():  # the workers hold their ends now
            for conn in pair:
                conn.close()
        return _collect(run, uplinks, procs)


@contextlib.contextmanager
def _stopping(procs: list[Any]) -> Iterator[None]:
    """On any way out, stop every worker still running: terminate, then kill. On a failure or an
    interrupt the whole tree below us is stopped first, while it is still ours to find: a
    worker killed before its pool would leave that pool behind, adopted by init."""
    try:
        yield
    except BaseException:
        stop_descendants(grace_s=3.0)
        raise
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 5.0
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def _collect(run: Run, uplinks: list[Connection], procs: list[Any]) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    done: set[Connection] = set()
    open_links = dict(zip(uplinks, procs, strict=True))
    while open_links:
        for ready in wait(list(open_links)):
            conn = cast(Connection, ready)
            try:
                kind, body = conn.recv()
            except EOFError:
                proc = open_links.pop(conn)
                proc.join(5.0)
                if conn not in done:
                    raise FedcoreError(
                        f"simulation worker {proc.name} ended (exit code {proc.exitcode}) before "
                        "reporting its parties' outcomes"
                    ) from None
                continue
            if kind == "progress" and run.progress is not None:
                for event in cast(list[tuple[Any, ...]], body):
                    run.progress(ProgressEvent(*event))
            elif kind == "outcomes":
                results.update(cast(dict[str, Outcome], body))
                done.add(conn)
    return results


def _worker_main(
    run: Run,
    names: tuple[str, ...],
    block: tuple[str, ...],
    inner: tuple[str, int],
    script: tuple[str, str] | None,
    plan: FaultPlan | None,
    mesh: _Mesh,
    up: Connection,
    others: list[Connection],
    parent: int,
) -> None:
    for conn in others:
        conn.close()
    # a terminate from the parent (or its death) unwinds through finally, so this worker's
    # pool goes with it
    signal.signal(signal.SIGTERM, _exit_on_term)
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sink = _ProgressUplink(up)
    runtime = make_runtime(inner[0], workers=inner[1])
    try:
        if script is not None:
            runtime.register_script(*script)
        job = dataclasses.replace(run, progress=sink if run.progress is not None else None)
        results = _run_block(job, names, block, runtime, plan, mesh)
        sink.flush()
        up.send(("outcomes", results))
    except FedcoreError as exc:
        up.send(("outcomes", {n: RemoteError(n, None, type(exc).__name__, str(exc)) for n in block}))
    except BaseException:
        stop_descendants(grace_s=1.0)  # a pool task may be running: closing would wait for it
        raise
    finally:
        runtime.close()
        stop_helpers()
        up.close()


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class _ProgressUplink:
    """Sends this worker's parties' latest progress events to the parent, at most every 0.5 s."""

    def __init__(self, up: Connection):
        self._up = up
        self._latest: dict[str, tuple[Any, ...]] = {}
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        self._latest[event.party] = (event.party, event.step, event.done, event.total, event.message)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.flush()

    def flush(self) -> None:
        if self._latest:
            batch, self._latest = list(self._latest.values()), {}
            self._up.send(("progress", batch))
