"""The ray backend: a party's local tasks as Ray tasks on the party's own Ray cluster.

``make_runtime("ray", workers=N, address=ADDR)`` (the registry imports this module on first
use, so Ray stays optional). With ``address=None`` the backend attaches
to the Ray instance this machine already runs (``RAY_ADDRESS`` or the last ``ray start``), or
starts a local one of ``workers`` CPUs bound to loopback only. With an address it attaches to
that cluster. Everything a task carries stays inside the party's own cluster: Ray's pickling
never crosses organizations (peers only ever see ``fedcore.wire`` bytes).

A task that raises surfaces at the caller as the original exception type, with the worker's
traceback as its ``__cause__`` (as on the processes backend). Protocol-script functions work
as tasks: ``register_script`` ships the script's source to the workers, which import it under
the same module name before running a task, so the script need not exist on every node.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle

from fedcore.errors import ConfigError
from fedcore.netaddr import is_loopback
from fedcore.runtime._interface import Runtime

# ray's vendored cloudpickle ships no annotations: its dumps under the one signature used here
_dumps: Callable[[object], bytes] = cloudpickle.dumps


class RemoteTraceback(Exception):
    """The traceback of a task that failed on a Ray worker (set as the error's ``__cause__``)."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class RayConnection:
    """This process's connection to Ray, shared by reference count.

    ``acquire`` connects (see ``connect_ray``) and returns True when the caller now co-owns the
    connection; co-owners call ``release`` when done, and the last one shuts Ray down in this
    process. A caller inside a Ray worker, or after someone else's ``ray.init``, owns nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owners = 0  # live users (RayRuntimes, the Ray engine) sharing the connection

    def acquire(self, address: str | None, num_cpus: int | None) -> bool:
        with self._lock:
            if connect_ray(address, num_cpus) or self.owners > 0:
                self.owners += 1
                return True
            return False

    def release(self) -> None:
        with self._lock:
            self.owners -= 1
            if self.owners == 0 and ray.is_initialized():
                ray.shutdown()


CONNECTION = RayConnection()
acquire = CONNECTION.acquire
release = CONNECTION.release


def connect_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect this process to Ray unless it already is; True when this call connected.

    A Ray instance started here (no address and none running) listens on 127.0.0.1 only.

    Raises:
        ConfigError: the cluster at ``address`` cannot be reached.
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
        "configure_logging": False,
    }
    try:
        with _loopback_node(address is None or _is_loopback(address)):
            _init(address, num_cpus, options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or "this machine"
        raise ConfigError(
            f"cannot start or reach the Ray cluster at {where}: {exc}", key="runtime.address"
        ) from None
    return True


def _init(address: str | None, num_cpus: int | None, options: dict[str, Any]) -> None:
    """``ray.init``: a new local instance gets ``num_cpus``; an existing one is joined as it is."""
    if address is not None:
        ray.init(address=address, **options)
        return
    try:
        ray.init(address=None, num_cpus=num_cpus, **options)
    except ValueError as exc:
        if "existing cluster" not in str(exc):
            raise
        ray.init(address=None, **options)  # RAY_ADDRESS or a `ray start` on this machine


def _is_loopback(address: str) -> bool:
    """Whether a Ray address (``host:port``, ``ray://host:port``) names this machine's loopback."""
    return is_loopback(address.split("://", 1)[-1].rsplit(":", 1)[0])


@contextlib.contextmanager
def _loopback_node(enabled: bool) -> Iterator[None]:
    """While Ray starts or attaches, make it take 127.0.0.1 as this node's address.

    A Ray started here then binds loopback only (not the machine's public address), and a
    driver attaching to a loopback cluster looks for its local node at 127.0.0.1 (otherwise it
    waits for a node that never appears). Ray reads the switch only while connecting.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without this switch keeps its own default
        yield
        return
    saved = ray_constants.ENABLE_RAY_CLUSTER
    if enabled:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def load_scripts(scripts: dict[str, tuple[str, str]]) -> None:
    """Import each registered script from its source, under the module name the caller used."""
    for module_name, (path, source) in scripts.items():
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - the party's own script
        except BaseException:
            del sys.modules[module_name]
            raise


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a RuntimeError naming it."""
    try:
        cloudpickle.loads(_dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


@ray.remote
def _run_task(scripts: dict[str, tuple[str, str]], blob: bytes) -> tuple[Any, ...]:
    """Runs on a Ray worker: load the scripts, then the task; errors come back as values."""
    load_scripts(scripts)
    # the party's own task on its own Ray cluster, pickled by its own driver: never peer bytes
    fn, args, kwargs = cloudpickle.loads(blob)
    try:
        return (True, fn(*args, **kwargs))
    except Exception as exc:
        return (False, _portable(exc), traceback.format_exc())


def _settle(outer: Future[Any], inner: Future[Any]) -> None:
    """Copy a finished Ray future into the caller's future, unwrapping task errors."""
    if not outer.set_running_or_notify_cancel():
        return
    try:
        reply = inner.result()
    except BaseException as exc:  # Ray's own failure (worker died, task cancelled): pass it on
        outer.set_exception(exc)
        return
    if reply[0]:
        outer.set_result(reply[1])
        return
    error: BaseException = reply[1]
    error.__cause__ = RemoteTraceback(f'\n"""\n{reply[2]}"""')
    outer.set_exception(error)


class RayRuntime(Runtime):
    """Tasks as Ray remote functions, results as ``concurrent.futures.Future``.

    Args:
        workers: CPUs of a locally started Ray instance, and the parallelism callers plan for.
        address: a Ray cluster address (``host:port``, ``ray://host:port``), or None for the
            local instance (attached if one runs, else started on loopback).
        num_cpus: CPUs each task reserves (default 1).
    """

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, num_cpus: float = 1.0):
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(
                f"runtime address must be a host:port string, got {address!r}", key="runtime.address"
            )
        self.workers = workers
        self.address = address
        self._num_cpus = num_cpus
        self._lock = threading.Lock()
        self._owner = False
        self._scripts: dict[str, tuple[str, str]] = {}
        self._scripts_ref: Any = None
        self._pending: set[Any] = set()
        self._connect()

    def _connect(self) -> None:
        with self._lock:
            if not self._owner:
                self._owner = acquire(self.address, self.workers)

    def register_script(self, module_name: str, path: str) -> None:
        source = Path(path).read_text(encoding="utf-8")
        with self._lock:
            if self._scripts.get(module_name) == (path, source):
                return
            self._scripts[module_name] = (path, source)
            self._scripts_ref = None

    def _scripts_object(self) -> Any:
        with self._lock:
            if self._scripts_ref is None:
                self._scripts_ref = ray.put(dict(self._scripts))
            return self._scripts_ref

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not ray.is_initialized():
            self._connect()
        blob = _dumps((fn, args, kwargs))
        ref = _run_task.options(num_cpus=self._num_cpus).remote(self._scripts_object(), blob)
        outer: Future[Any] = Future()
        with self._lock:
            self._pending.add(ref)
        ref.future().add_done_callback(lambda inner: self._done(ref, outer, inner))
        outer.add_done_callback(lambda f: f.cancelled() and ray.cancel(ref))
        return outer

    def _done(self, ref: Any, outer: Future[Any], inner: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(ref)
        _settle(outer, inner)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        futures = [self.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Cancel unfinished tasks; shut Ray down if this runtime was its last user here."""
        with self._lock:
            pending, self._pending = list(self._pending), set()
            self._scripts_ref = None
            owner, self._owner = self._owner, False
        for ref in pending:
            ray.cancel(ref)
        if owner:
            release()
