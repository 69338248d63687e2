"""The runtime interface: what every backend implements (the bottom of fedcore.runtime)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any


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
