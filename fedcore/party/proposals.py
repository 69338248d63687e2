"""Pending job proposals, capped per initiator and in total, expired by one timer thread.

A proposal a peer never starts holds a job record, an open mailbox and a loaded script. The
book bounds how many there are (``[limits] pending_proposals`` in total,
``pending_proposals_per_peer`` per initiator) and ``Deadlines`` expires them with a single
thread for the whole daemon, never one timer thread per proposal.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from fedcore.errors import PolicyRefused

log = logging.getLogger("fedcore.party")


class Deadlines:
    """Runs callbacks at their due time on one thread (started on first use)."""

    def __init__(self, name: str):
        self.name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` in ``delay_s`` seconds on the timer thread (keep it short)."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._order), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # one failing callback must not stop every later timer
                log.exception("%s: a timed callback failed", self.name)


class ProposalBook:
    """Which proposals are pending (accepted, neither started nor cancelled), by initiator."""

    def __init__(self, me: str, total: int, per_initiator: int):
        self.me, self.total, self.per_initiator = me, total, per_initiator
        self._pending: dict[str, str] = {}  # job id -> initiator
        self._lock = threading.Lock()

    def admit(self, initiator: str, job_id: str) -> None:
        """Count a new proposal.

        Raises:
            PolicyRefused: ``initiator`` or all initiators together are at their cap.
        """
        with self._lock:
            mine = sum(1 for who in self._pending.values() if who == initiator)
            if mine >= self.per_initiator:
                raise PolicyRefused(
                    f"{self.me} refuses job {job_id} from {initiator}: {initiator} already has {mine} "
                    f"proposals pending here, the most one initiator may have "
                    "([limits] pending_proposals_per_peer); start or cancel them first"
                )
            if len(self._pending) >= self.total:
                raise PolicyRefused(
                    f"{self.me} refuses job {job_id} from {initiator}: {len(self._pending)} proposals "
                    "are pending here, the most it holds ([limits] pending_proposals); try again later"
                )
            self._pending[job_id] = initiator

    def settle(self, job_id: str) -> None:
        """The proposal was started, cancelled, refused or expired: it is no longer pending."""
        with self._lock:
            self._pending.pop(job_id, None)

    def count(self, initiator: str | None = None) -> int:
        with self._lock:
            return sum(1 for who in self._pending.values() if initiator in (None, who))
