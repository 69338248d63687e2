"""Checkpoints: round trip, latest selection, no pickle, plot fallback."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from fedcore.errors import ConfigError
from fedcore.fl.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    load_checkpoint,
    plot_history,
    save_checkpoint,
)


def sample(rnd: int) -> Checkpoint:
    params = [np.arange(6, dtype=np.float32).reshape(2, 3) * rnd, np.array([1.5, -2.0], dtype=np.float32)]
    state = {"m": [np.ones((2, 3)), np.zeros(2)], "v": [np.full((2, 3), 0.5), np.ones(2)]}
    return Checkpoint(
        rnd, params, state, {"strategy": "fedadam", "history": [{"round": rnd, "accuracy": 0.9}]}
    )


def test_round_trip(tmp_path) -> None:
    path = save_checkpoint(tmp_path, sample(3))
    back = load_checkpoint(path)
    assert back.round == 3 and back.meta["strategy"] == "fedadam"
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(back.params, sample(3).params))
    assert set(back.state) == {"m", "v"} and np.array_equal(back.state["v"][0], np.full((2, 3), 0.5))
    assert json.loads((tmp_path / "history.json").read_text())["history"][0]["round"] == 3


def test_directory_resumes_from_the_latest_round(tmp_path) -> None:
    for rnd in (1, 2, 10):
        save_checkpoint(tmp_path, sample(rnd))
    assert latest_checkpoint(tmp_path).name == "round-00010.npz"
    assert load_checkpoint(tmp_path).round == 10
    assert not list(tmp_path.glob(".*.tmp"))


def test_files_hold_no_pickle_and_pickles_are_refused(tmp_path) -> None:
    path = save_checkpoint(tmp_path, sample(1))
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'descr': '|O'" not in header  # no object arrays
    with np.load(path, allow_pickle=False) as archive:
        assert "meta.json" in archive.files
    evil = tmp_path / "evil" / "round-00001.npz"
    evil.parent.mkdir()
    np.savez(
        evil, **{"params.0": np.array([object()], dtype=object), "meta.json": np.frombuffer(b"{}", np.uint8)}
    )
    with pytest.raises(ConfigError, match="not a fedcore checkpoint"):
        load_checkpoint(evil)


def test_nothing_to_resume(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no round"):
        load_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")


def test_plot_writes_a_png_or_says_why_not(tmp_path) -> None:
    target = tmp_path / "curve.png"
    message = plot_history([{"round": 1, "accuracy": 0.5, "loss": 1.0}], target)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in message and not target.exists()
    else:
        assert target.read_bytes()[:4] == b"\x89PNG"
