"""The runtime interface and the backend registry."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from fedcore.errors import ConfigError


class Runtime(abc.ABC):
    """Runs local tasks for a party: ``submit`` one, ``map`` many, ``close`` when done."""

    name: str = "runtime"
    workers: int = 1

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Start ``fn(*args, **kwargs)`` and return its future."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Apply ``fn`` to every item, in parallel where the backend can; results in order."""
        futures = [self.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def register_script(self, module_name: str, path: str) -> None:  # noqa: B027
        """Make a protocol script importable as ``module_name`` wherever tasks run."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting tasks and release workers."""

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BACKENDS: dict[str, Callable[..., Runtime]] = {}


def register_backend(name: str, factory: Callable[..., Runtime]) -> None:
    BACKENDS[name] = factory


def make_runtime(backend: str = "processes", workers: int | None = None, **options: Any) -> Runtime:
    """Build a runtime by backend name (inline, threads, processes, ray).

    Raises:
        ConfigError: unknown backend, or a bad worker count.
    """
    if backend == "ray" and "ray" not in BACKENDS:
        try:
            import fedcore.runtime._ray  # noqa: F401  (registers the backend)
        except ImportError as exc:
            raise ConfigError(
                f"the ray backend needs Ray ({exc}): pip install 'fedcore[ray]'"
            ) from None
    if backend not in BACKENDS:
        raise ConfigError(f"unknown runtime backend {backend!r}: use one of {[*sorted(BACKENDS), 'ray']}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"runtime workers must be a positive integer, got {workers!r}")
    return BACKENDS[backend](workers=workers or default_workers(), **options)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
