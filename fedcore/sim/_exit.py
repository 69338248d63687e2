"""Leaving nothing behind: every process a simulation starts ends before it returns.

Three kinds of process outlive a careless run: the coop engine's workers (stopped by
``_coop._stopping`` on every way out, and told by the kernel to stop if this process dies
first), the worker processes of a ``processes`` runtime (its ``close`` joins them), and two
helpers that ``multiprocessing`` starts once and leaves to exit by themselves some time after
this process has gone: the forkserver and the resource tracker. ``stop_helpers`` ends those
two now, so a process group is empty the moment the command exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)


def stop_helpers() -> None:
    """Stop the forkserver and the resource tracker if this process started them."""
    from multiprocessing import forkserver, resource_tracker

    for helper in (getattr(forkserver, "_forkserver", None), getattr(resource_tracker, "_resource_tracker", None)):
        stop = getattr(helper, "_stop", None)  # private, present in CPython 3.8-3.13
        if stop is not None:
            with contextlib.suppress(Exception):  # an already gone helper is what we want
                stop()


@contextlib.contextmanager
def exits_cleanly() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (through every ``finally``); helpers are stopped at the end."""
    previous: Any = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)
        stop_helpers()


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
