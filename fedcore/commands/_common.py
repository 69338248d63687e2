"""Helpers shared by CLI subcommands: parameters, JSON output, progress display."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

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
    text = json.dumps(_compact(_shapes(value), top=True))
    return text if len(text) <= width else text[: width - 3] + "..."


def _shapes(value: Any) -> Any:
    """Arrays over a few values as ``<float64[1000]>``, so a party's key results stay readable."""
    if isinstance(value, np.ndarray) and value.size > FIRST_VALUES:
        return f"<{value.dtype}[{'x'.join(map(str, value.shape))}]>"
    if isinstance(value, dict):
        return {k: _shapes(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shapes(v) for v in value]
    return jsonable(value)


def _compact(value: Any, top: bool = False) -> Any:
    if isinstance(value, dict):
        if not top:
            return {k: _compact(v) for k, v in value.items()}
        # scalars first, so what matters (accuracy, sum) is read before long lists and arrays
        ordered = sorted(value.items(), key=lambda kv: _weight(kv[1]))
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


def _weight(value: Any) -> int:
    if isinstance(value, str) and value.startswith("<") and "[" in value:
        return 2  # an array's shape
    return 1 if isinstance(value, (list, dict)) else 0


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


SUMMARY_MIN_VALUES = 16
"""Arrays with more values than this are summarised in ``--json`` (or written with ``--out``)."""
FIRST_VALUES = 5
WHOLE_HINT = "rerun with --out DIR to get every array whole as .npy"


def arrays_to_files(value: Any, folder: Path, stem: str) -> Any:
    """``value`` with every numpy array saved as ``<folder>/<stem>[.<key>...].npy`` and replaced by
    ``{"file", "shape", "dtype"}`` (arrays of any size: the JSON stays a table of contents)."""
    if isinstance(value, np.ndarray):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.npy"
        np.save(path, value, allow_pickle=False)
        return {"file": str(path), "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: arrays_to_files(v, folder, f"{stem}.{_safe(k)}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [arrays_to_files(v, folder, f"{stem}.{i}") for i, v in enumerate(value)]
    return value


def summarize_arrays(value: Any, min_values: int = SUMMARY_MIN_VALUES) -> tuple[Any, int]:
    """``value`` with arrays over ``min_values`` values replaced by a summary (shape, dtype, sha256
    of the C-order bytes, the first values); returns it and how many were summarised."""
    if isinstance(value, np.ndarray):
        if value.size <= min_values or value.dtype.hasobject:
            return value, 0
        flat = np.ascontiguousarray(value)
        first = flat.reshape(-1)[:FIRST_VALUES]
        summary = {
            "shape": list(value.shape),
            "dtype": str(value.dtype),
            "sha256": hashlib.sha256(flat.tobytes()).hexdigest(),
            "first": jsonable(first),
            "whole": WHOLE_HINT,
        }
        return summary, 1
    if isinstance(value, dict):
        items = {k: summarize_arrays(v, min_values) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, sum(n for _, n in items.values())
    if isinstance(value, list | tuple):
        pairs = [summarize_arrays(v, min_values) for v in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    return value, 0


def _safe(key: Any) -> str:
    """A dict key as a piece of a file name: what is not a letter, digit, '-' or '_' becomes '_'."""
    text = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(key))
    return text[:64] or "_"
