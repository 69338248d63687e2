"""The inline, threads and processes backends."""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from fedcore.runtime._interface import Runtime


class InlineRuntime(Runtime):
    """Runs each task at once in the caller's thread: for debugging."""

    name = "inline"

    def __init__(self, workers: int = 1):
        self.workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the future carries it to the caller, as the pools do
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass


class _PoolRuntime(Runtime):
    def __init__(self, workers: int):
        self.workers = workers
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    def _make_pool(self) -> Executor:
        raise NotImplementedError

    def _executor(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = self._make_pool()
            return self._pool

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._executor().submit(fn, *args, **kwargs)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return list(self._executor().map(fn, items))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ThreadRuntime(_PoolRuntime):
    """A thread pool: for work that releases the GIL (numpy, hashing, gmpy2 in large calls)."""

    name = "threads"

    def _make_pool(self) -> Executor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="fedcore-task")


def _load_scripts(scripts: dict[str, str]) -> None:
    """Worker initializer: import each protocol script under the name the parent used."""
    for module_name, path in scripts.items():
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)


class ProcessRuntime(_PoolRuntime):
    """A process pool (forkserver): for CPU-bound crypto on every core.

    Functions defined in a protocol script can be tasks: the script is registered with
    ``register_script`` and imported by each worker under the same module name.
    """

    name = "processes"

    def __init__(self, workers: int):
        super().__init__(workers)
        self._scripts: dict[str, str] = {}

    def register_script(self, module_name: str, path: str) -> None:
        with self._lock:
            if self._scripts.get(module_name) == path:
                return
            self._scripts[module_name] = path
            stale, self._pool = self._pool, None
        if stale is not None:  # workers started before this script existed cannot import it
            stale.shutdown(wait=False)

    def _make_pool(self) -> Executor:
        context = multiprocessing.get_context("forkserver")
        # workers fork from a server that already imported the heavy modules: no cold first task
        context.set_forkserver_preload(["numpy", "gmpy2", "fedcore.wire", "fedcore.he._tasks"])
        return ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_load_scripts, initargs=(dict(self._scripts),)
        )
