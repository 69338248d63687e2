"""Dataset partitions (disjoint, covering, reproducible, skewed as asked) and reading data files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcore import data
from fedcore.errors import ConfigError

LABELS = np.repeat(np.arange(10), 100)  # 1000 samples, 10 balanced classes


def assert_partition(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_iid_is_disjoint_covering_balanced_and_reproducible() -> None:
    parts = data.iid(103, 10, seed=7)
    assert_partition(parts, 103)
    assert {len(p) for p in parts} == {10, 11}
    assert all(np.array_equal(a, b) for a, b in zip(parts, data.iid(103, 10, seed=7)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, data.iid(103, 10, seed=8)))


def test_train_test_split() -> None:
    train, test = data.train_test_split(100, 0.2, seed=1)
    assert len(test) == 20 and not set(train) & set(test) and len(train) + len(test) == 100
    again = data.train_test_split(100, 0.2, seed=1)
    assert np.array_equal(test, again[1])
    with pytest.raises(ConfigError):
        data.train_test_split(100, 1.0, seed=1)


def test_dirichlet_is_a_partition_and_reproducible() -> None:
    parts = data.dirichlet(LABELS, 8, alpha=0.5, seed=3)
    assert_partition(parts, len(LABELS))
    assert all(np.array_equal(a, b) for a, b in zip(parts, data.dirichlet(LABELS, 8, alpha=0.5, seed=3)))


def test_dirichlet_skew_follows_alpha() -> None:
    skew = {
        a: data.label_skew(LABELS, data.dirichlet(LABELS, 10, alpha=a, seed=0)) for a in (0.1, 1.0, 100.0)
    }
    iid = data.label_skew(LABELS, data.iid(len(LABELS), 10, seed=0))
    assert skew[0.1] > 0.5 > skew[1.0] > skew[100.0] and skew[100.0] < 0.15 and iid < 0.15
    with pytest.raises(ConfigError):
        data.dirichlet(LABELS, 3, alpha=0, seed=0)


def test_label_skew_extremes() -> None:
    labels = np.array([0, 0, 1, 1])
    assert data.label_skew(labels, [np.array([0, 1]), np.array([2, 3])]) == 0.5
    assert data.label_skew(labels, [np.array([0, 2]), np.array([1, 3])]) == 0.0


def test_vertical_split_of_columns() -> None:
    groups = data.vertical(10, 3)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    shuffled = data.vertical(["age", "income", "zip", "score"], 2, seed=4)
    assert_partition(shuffled, 4) and all(len(g) == 2 for g in shuffled)
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, data.vertical(4, 2, seed=4)))
    with pytest.raises(ConfigError):
        data.vertical(2, 3)


def test_xy_from_tables() -> None:
    x, y = data.xy_from_table({"x": np.ones((3, 2)), "y": np.array([0, 1, 0])})
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 0]
    x, y = data.xy_from_table(
        {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0]), "label": np.array([1, 0])}, label="label"
    )
    assert x.tolist() == [[1, 3], [2, 4]] and y.tolist() == [1, 0]
    with pytest.raises(ConfigError, match="label"):
        data.xy_from_table({"a": np.ones(2)})


def test_load_table_reads_npz_arrays_and_csv_columns(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(6.0).reshape(3, 2), y=np.array([0, 1, 1]))
    (tmp_path / "d.CSV").write_text("age,name\n31,ann\n45.5,bo\n")
    arrays = data.load_table(tmp_path / "d.npz")
    assert sorted(arrays) == ["x", "y"] and arrays["x"].tolist() == [[0, 1], [2, 3], [4, 5]]
    columns = data.load_table(tmp_path / "d.CSV")
    assert columns["age"].tolist() == [31.0, 45.5] and columns["name"].tolist() == ["ann", "bo"]
    x, y = data.xy_from_table({"age": columns["age"], "y": np.array([1.0, 0.0])})
    assert x.tolist() == [[31.0], [45.5]] and y.tolist() == [1, 0]
    with pytest.raises(ConfigError, match="numeric"):
        data.xy_from_table(columns | {"y": np.array([1.0, 0.0])})


def test_load_table_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    np.savez(tmp_path / "pickled.npz", v=np.array([{"a": 1}], dtype=object))
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    (tmp_path / "notes.txt").write_text("a,b\n")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    cases = {
        "missing.npz": "does not exist",
        "pickled.npz": "cannot read",
        "broken.npz": "cannot read",
        "empty.csv": "header row",
        "ragged.csv": "every row must have 2 fields",
        "notes.txt": "must end in .npz or .csv",
    }
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            data.load_table(tmp_path / name)
