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
import time
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

    for helper in (
        getattr(forkserver, "_forkserver", None),
        getattr(resource_tracker, "_resource_tracker", None),
    ):
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


def descendants(root: int | None = None) -> list[int]:
    """The ids of every live process below ``root`` (default: this one), read from /proc."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_descendants(grace_s: float = 2.0) -> None:
    """SIGTERM every process below this one, then SIGKILL what is left after ``grace_s``: the
    way out of a failed or interrupted run, where a pool task may still be running."""
    pids = descendants()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.02)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    for pid in pids:  # reap the ones that are our own children
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
