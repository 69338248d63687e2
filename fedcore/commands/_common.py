"""Helpers shared by CLI subcommands: parameters, JSON output, progress display."""

from __future__ import annotations

import json
import sys
import threading
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
    """Collects progress events from all parties; draws one self-updating line on a terminal.

    The line follows the most advanced party (for training: the coordinator, whose events
    carry the round's accuracy, loss and parties): ``round 7/20 |###   | accuracy 0.95, loss
    0.2, parties 10 [00:03<00:06]`` with elapsed time and ETA from tqdm. Nothing is drawn when
    the stream is not a terminal or ``enabled`` is false (``--json``).
    """

    def __init__(self, total_parties: int, stream: Any = None, interval_s: float = 0.5, enabled: bool = True):
        self.total = total_parties
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.enabled = enabled
        self._latest: dict[str, ProgressEvent] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._latest[event.party] = event

    def lead(self) -> ProgressEvent | None:
        """The event to show: the furthest along, one with a message first among equals."""
        with self._lock:
            events = list(self._latest.values())
        if not events:
            return None
        return max(events, key=lambda e: (e.done or 0, e.message is not None))

    def line(self) -> str:
        """The line as plain text (what the bar shows, without the bar)."""
        lead = self.lead()
        if lead is None:
            return f"{self.total} parties running"
        desc, count = self._describe(lead)
        return " | ".join(part for part in (f"{desc} {count}".strip(), lead.message or "") if part)

    def _describe(self, lead: ProgressEvent) -> tuple[str, str]:
        step = lead.step or ""
        label = step.split(" ")[0] if step.startswith("round ") else step
        if lead.done is not None and lead.total:
            return label, f"{lead.done:g}/{lead.total:g}"
        return step, ""

    def __enter__(self) -> ProgressBoard:
        if self.enabled and self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the torch extra: a plain line without it
                pass
            else:
                self._bar = tqdm(
                    total=None, file=self.stream, smoothing=0, dynamic_ncols=True, leave=False,
                    bar_format="{desc} {n_fmt}/{total_fmt} |{bar:12}| {postfix} [{elapsed}<{remaining}]",
                )  # fmt: skip
            self._thread = threading.Thread(target=self._draw, daemon=True)
            self._thread.start()
        return self

    def _draw(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._update()

    def _update(self) -> None:
        lead, bar = self.lead(), self._bar
        if self._thread is None:
            return
        if bar is None:
            self.stream.write("\r\x1b[K" + self.line()[:160])
            self.stream.flush()
            return
        if lead is None:
            return
        desc, _ = self._describe(lead)
        if lead.total:
            bar.total = lead.total
        bar.n = lead.done or 0
        bar.set_description_str(
            f"{desc} ({len(self._latest)}/{self.total} parties)" if not lead.message else desc, refresh=False
        )
        bar.set_postfix_str(lead.message or "", refresh=False)
        bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()
        elif self._thread is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
