"""Checkpoints of federated training: the global model each round, safely, and its history.

A checkpoint is one ``round-NNNNN.npz`` file written with numpy (never pickle; read back with
``allow_pickle=False``): the global parameters (``params.K``), the strategy's server state
(``state.NAME.K``, e.g. FedAdam's moments) and a JSON metadata blob (``meta.json`` as
uint8: round, strategy, metric history, DP ledger), so one file is enough to resume.
``history.json`` beside it holds the metrics for people and tools. Files are written to a
temporary name and renamed, so a crash never leaves a half-written checkpoint behind.

Checkpoints, plots and resumes live in the party's own output folder: ``job_path`` keeps a
path that the script already resolved there and sends anything else (a job parameter)
through ``ctx.output_path``, which refuses an absolute path, ``..`` or a symlink that leaves it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fedcore.errors import ConfigError
from fedcore.fl.arrays import Params
from fedcore.fl.strategies import State

if TYPE_CHECKING:
    from fedcore.context import Context

_NAME = re.compile(r"^round-(\d{5,})\.npz$")


@dataclass
class Checkpoint:
    """Everything needed to continue training after ``round``."""

    round: int
    params: Params
    state: State = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def job_path(ctx: Context, value: str | Path, *, scope: Literal["job", "party"] = "job") -> Path:
    """``value`` as a path in this party's output folder (``scope="party"``: any of its jobs).

    Raises:
        PolicyRefused: the path would leave the folder.
    """
    root = ctx.output_dir if scope == "job" else ctx.output_dir.parent
    path = Path(value)
    if path.is_absolute() and path.resolve().is_relative_to(root.resolve()):
        return path  # the script resolved it already (ctx.output_path)
    return ctx.output_path(str(value), scope=scope)


def save_checkpoint(directory: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``round-NNNNN.npz`` and ``history.json`` into ``directory``; return the .npz path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {f"params.{i}": np.asarray(p) for i, p in enumerate(checkpoint.params)}
    for name, values in checkpoint.state.items():
        if not name.isidentifier():
            raise ConfigError(f"server state name {name!r} must be an identifier to be saved")
        arrays.update({f"state.{name}.{i}": np.asarray(v) for i, v in enumerate(values)})
    meta = {**checkpoint.meta, "round": checkpoint.round}
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = directory / f"round-{checkpoint.round:05d}.npz"
    tmp = directory / f".{path.name}.tmp"
    with tmp.open("wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)
    os.replace(tmp, path)
    _write_json(directory / "history.json", meta)
    return path


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint file of the highest round in ``directory``, or None."""
    found = [(int(m.group(1)), p) for p in Path(directory).glob("round-*.npz") if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file, or the latest one in a directory (no pickle is ever loaded).

    Raises:
        ConfigError: nothing to resume from, or the file is not a fedcore checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise ConfigError(f"resume: {path} holds no round-NNNNN.npz checkpoint")
        path = found
    if not path.is_file():
        raise ConfigError(f"resume: checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(bytes(arrays.pop("meta.json")).decode())
    except (ValueError, OSError, KeyError, UnicodeDecodeError) as exc:
        raise ConfigError(f"resume: {path} is not a fedcore checkpoint ({type(exc).__name__})") from None
    params = _indexed(arrays, "params")
    names = sorted({key.split(".")[1] for key in arrays if key.startswith("state.")})
    state = {name: _indexed(arrays, f"state.{name}") for name in names}
    return Checkpoint(int(meta["round"]), params, state, meta)


def _indexed(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for key in arrays if key.rsplit(".", 1)[0] == prefix)
    return [arrays[f"{prefix}.{i}"] for i in range(count)]


def plot_history(history: list[dict[str, Any]], path: str | Path, title: str | None = None) -> str:
    """Draw accuracy and loss per round to a PNG if matplotlib is installed, under ``title``.

    Returns:
        The path written, or a message saying why nothing was drawn.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        return f"plot skipped: matplotlib is not installed (pip install matplotlib to draw {path})"
    rounds = [h["round"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(rounds, [h["accuracy"] for h in history], marker="o")
    left.set(xlabel="round", ylabel="test accuracy")
    right.plot(rounds, [h["loss"] for h in history], marker="o", color="tab:red")
    right.set(xlabel="round", ylabel="test loss")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
