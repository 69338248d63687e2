"""The backend registry: ``make_runtime`` by name.

Imports run one way: this module imports the backends (``_pool`` here, ``_ray`` when it
is first asked for), and the backends import only the interface (``_interface``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fedcore.errors import ConfigError
from fedcore.runtime._interface import Runtime
from fedcore.runtime._pool import InlineRuntime, ProcessRuntime, ThreadRuntime

BACKENDS: dict[str, Callable[..., Runtime]] = {
    "inline": InlineRuntime,
    "threads": ThreadRuntime,
    "processes": ProcessRuntime,
}  # "ray" joins on first use (``_ray_backend``)


def register_backend(name: str, factory: Callable[..., Runtime]) -> None:
    BACKENDS[name] = factory


def make_runtime(backend: str = "processes", workers: int | None = None, **options: Any) -> Runtime:
    """Build a runtime by backend name (inline, threads, processes, ray).

    Raises:
        ConfigError: unknown backend, or a bad worker count.
    """
    if backend == "ray" and "ray" not in BACKENDS:
        register_backend("ray", _ray_backend())
    if backend not in BACKENDS:
        raise ConfigError(f"unknown runtime backend {backend!r}: use one of {[*sorted(BACKENDS), 'ray']}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"runtime workers must be a positive integer, got {workers!r}")
    return BACKENDS[backend](workers=workers or default_workers(), **options)


def _ray_backend() -> Callable[..., Runtime]:
    """The Ray backend, imported on first use: Ray is an optional extra (``fedcore[ray]``)."""
    try:
        from fedcore.runtime._ray import RayRuntime  # function-level: keeps Ray optional
    except ImportError as exc:
        raise ConfigError(f"the ray backend needs Ray ({exc}): pip install 'fedcore[ray]'") from None
    return RayRuntime


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
