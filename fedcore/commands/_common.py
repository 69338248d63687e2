"""Helpers shared by CLI subcommands: parameters, JSON output, progress display."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from fedcore.context import ProgressEvent
from fedcore.errors import ConfigError
from fedcore.results import jsonable


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is JSON when it parses as JSON, else a string."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE with KEY a Python identifier")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value)) + "\n")
    sys.stdout.flush()


def summarize(value: Any, width: int = 110) -> str:
    """A one-line rendering of a result for humans: long sequences shown by their length."""
    text = json.dumps(_compact(jsonable(value), top=True))
    return text if len(text) <= width else text[: width - 3] + "..."


def _compact(value: Any, top: bool = False) -> Any:
    if isinstance(value, dict):
        if not top:
            return {k: _compact(v) for k, v in value.items()}
        # scalars first, so what matters (accuracy, sum) is read before long lists
        ordered = sorted(value.items(), key=lambda kv: isinstance(kv[1], (list, dict)))
        return {k: _compact(v) for k, v in ordered}
    if isinstance(value, list):
        if len(value) > 10:
            if isinstance(value[-1], dict):  # a history: the last entry is the one worth reading
                return [f"<{len(value) - 1} more>", _compact(value[-1])]
            return f"<{len(value)} items>"
        return [_compact(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


class ProgressBoard:
    """Collects progress events from all parties; draws one status line on a terminal."""

    def __init__(self, total_parties: int, stream: Any = None, interval_s: float = 0.5):
        self.total = total_parties
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self._latest: dict[str, ProgressEvent] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._latest[event.party] = event

    def line(self) -> str:
        with self._lock:
            events = list(self._latest.values())
        elapsed = time.monotonic() - self._start
        if not events:
            return f"[{elapsed:6.1f}s] {self.total} parties running"
        lead = events[0] if len(events) == 1 else max(events, key=lambda e: e.done or 0)
        parts = [f"[{elapsed:6.1f}s] {len(events)}/{self.total} parties reporting"]
        if lead.step:
            parts.append(f"step {lead.step}")
        if lead.done is not None and lead.total:
            parts.append(f"{lead.done:g}/{lead.total:g} ({100 * lead.done / lead.total:.0f}%)")
        if lead.message:
            parts.append(lead.message)
        return " | ".join(parts)

    def __enter__(self) -> ProgressBoard:
        if self.stream.isatty():
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def _draw(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.stream.write("\r\x1b[K" + self.line()[:160])
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\x1b[K")
            self.stream.flush()
