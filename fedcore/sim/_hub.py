"""A cooperative scheduler: many parties as greenlets on one OS thread.

Theory of operation. Each party's ``main`` runs in its own greenlet, a coroutine with its own
C stack slice, so a script written against the synchronous ``ctx`` API needs no change. The
hub greenlet owns a ready queue, a heap of timers and a thread-safe inbox:

- A party that must wait (a mailbox ``recv``, a runtime future) parks itself with
  ``Hub.park(waiter, timeout)``: control goes back to the hub, which runs the next ready party.
- Whatever makes it runnable again (a delivery, a peer finishing or dropping, a timer, a future
  completing in a pool thread) calls ``waiter.wake()``; another OS thread does it through
  ``call_soon_threadsafe``, which the hub drains between switches.
- With nothing ready the hub sleeps on the inbox until the nearest timer.

Only those waits yield. A party that blocks in C code (torch, a socket, ``time.sleep``, a
``Future.result()`` the engine did not hand out) holds this worker's thread until that call
returns: it delays the other parties of the worker but cannot freeze them forever unless it
waits on another party outside ``ctx`` (a ``threading.Lock`` held across ``ctx.recv``, a
queue filled by another party). Such scripts need ``--engine threads``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from greenlet import getcurrent, greenlet  # type: ignore[import-untyped]

from fedcore.errors import ConfigError
from fedcore.runtime import Runtime


class _Waiter:
    """One park of one greenlet: woken once, by whichever comes first."""

    __slots__ = ("_hub", "armed", "glet", "timed_out")

    def __init__(self, hub: Hub, glet: greenlet):
        self._hub, self.glet = hub, glet
        self.armed = True
        self.timed_out = False

    def wake(self) -> None:
        if self.armed:
            self.armed = False
            self._hub._ready.append(self.glet)

    def expire(self) -> None:
        if self.armed:
            self.timed_out = True
            self.wake()


class Hub:
    """Runs greenlets until every spawned one has returned (call ``run`` from the owning thread)."""

    def __init__(self) -> None:
        self._loop: greenlet | None = None
        self._ready: deque[greenlet] = deque()
        self._timers: list[tuple[float, int, Callable[[], object], bool]] = []
        self._held = 0  # timers that carry a delivery, which must fire even after our parties end
        self._inbox: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._order = itertools.count()
        self._tasks: set[greenlet] = set()
        self._live = 0

    # ------------------------------------------------------------------ for parties

    def in_task(self) -> bool:
        """Whether the caller is one of this hub's greenlets (and so may park)."""
        return getcurrent() in self._tasks

    def park(self, waiter: _Waiter, timeout_s: float | None) -> bool:
        """Suspend the calling greenlet until ``waiter`` is woken; False if the timeout came first."""
        if self._loop is None or getcurrent() is not waiter.glet or waiter.glet not in self._tasks:
            raise ConfigError(
                "a simulated party waited outside the cooperative engine (from a thread it started?): "
                "run this script with --engine threads"
            )
        if timeout_s is not None and math.isfinite(timeout_s):
            self.call_later(max(0.0, timeout_s), waiter.expire, hold=False)
        self._loop.switch()
        return not waiter.timed_out

    def waiter(self) -> _Waiter:
        return _Waiter(self, getcurrent())

    # ------------------------------------------------------------------ scheduling

    def spawn(self, fn: Callable[[], object]) -> None:
        """Start ``fn`` as a party task at the next turn of ``run``."""

        def body() -> None:
            try:
                fn()
            finally:
                self._live -= 1
                self._tasks.discard(glet)

        glet = greenlet(body)
        self._tasks.add(glet)
        self._live += 1
        self._ready.append(glet)

    def call_later(self, delay_s: float, action: Callable[[], object], hold: bool = True) -> None:
        """Run ``action`` on the hub after ``delay_s``; a held one keeps ``run(keep_timers=True)`` going."""
        self._held += hold
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._order), action, hold))

    def call_soon_threadsafe(self, action: Callable[[], object]) -> None:
        """Run ``action`` on the hub's thread between switches (from any thread)."""
        self._inbox.put(action)

    def run(self, keep_timers: bool = False) -> None:
        """Switch between tasks until all have returned (and, with ``keep_timers``, every
        delayed delivery has gone out: a party in another worker may still wait for it)."""
        self._loop = getcurrent()
        for glet in self._tasks:
            glet.parent = self._loop  # a finished task returns control here
        while True:
            self._drain()
            self._fire_timers()
            if self._ready:
                self._ready.popleft().switch()
                continue
            # checked here, after timers fired: the last delivery must not wait out a stale timeout
            if self._live == 0 and not (keep_timers and self._held > 0):
                return
            self._sleep()

    def _drain(self) -> None:
        while True:
            try:
                action = self._inbox.get_nowait()
            except queue.Empty:
                return
            action()

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, action, held = heapq.heappop(self._timers)
            self._held -= held
            action()

    def _sleep(self) -> None:
        timeout = None if not self._timers else max(0.0, self._timers[0][0] - time.monotonic())
        try:
            action = self._inbox.get(timeout=timeout if timeout is None else min(timeout, 3600.0))
        except queue.Empty:
            return
        action()

    # ------------------------------------------------------------------ mailbox hooks

    def condition(self) -> CoopCondition:
        return CoopCondition(self)


class CoopCondition:
    """A condition variable whose ``wait`` parks a greenlet instead of an OS thread.

    Everything that notifies runs on the hub's thread, so entering it needs no lock.
    """

    __slots__ = ("_hub", "_waiters")

    def __init__(self, hub: Hub):
        self._hub = hub
        self._waiters: list[_Waiter] = []

    def __enter__(self) -> CoopCondition:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait(self, timeout: float | None = None) -> bool:
        waiter = self._hub.waiter()
        self._waiters.append(waiter)
        try:
            return self._hub.park(waiter, timeout)
        finally:
            waiter.armed = False
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def notify_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.wake()


class CoopFuture(Future[Any]):
    """A runtime future whose ``result()`` parks the calling party instead of blocking the hub."""

    def __init__(self, hub: Hub, inner: Future[Any]):
        super().__init__()
        self._hub = hub
        inner.add_done_callback(self._copy)

    def _copy(self, inner: Future[Any]) -> None:
        if inner.cancelled():
            self.cancel()
            self.set_running_or_notify_cancel()
            return
        error = inner.exception()
        if error is not None:
            self.set_exception(error)
        else:
            self.set_result(inner.result())

    def _park_until_done(self, timeout: float | None) -> None:
        if self.done() or not self._hub.in_task():
            return
        waiter = self._hub.waiter()
        # the pool thread completes the future: hand the wake-up to the hub's own thread
        self.add_done_callback(lambda _f: self._hub.call_soon_threadsafe(waiter.wake))
        self._hub.park(waiter, timeout)

    def result(self, timeout: float | None = None) -> Any:
        self._park_until_done(timeout)
        return super().result(timeout=0 if self._hub.in_task() and not self.done() else timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._park_until_done(timeout)
        return super().exception(timeout=0 if self._hub.in_task() and not self.done() else timeout)


class CoopRuntime(Runtime):
    """A party's runtime under the cooperative engine: tasks run on ``inner``; waiting yields."""

    def __init__(self, hub: Hub, inner: Runtime):
        self._hub, self._inner = hub, inner
        self.name, self.workers = inner.name, inner.workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return CoopFuture(self._hub, self._inner.submit(fn, *args, **kwargs))

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        futures = [self.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def register_script(self, module_name: str, path: str) -> None:
        self._inner.register_script(module_name, path)

    def close(self) -> None:
        """The engine owns the inner runtime: a party closing its view closes nothing."""
