"""Partitioning a dataset across parties, for simulation; pure numpy, reproducible from a seed.

- ``train_test_split(n, test_fraction, seed)``: a held-out test set no party trains on.
- ``iid(n, parties, seed)``: a random permutation cut into near-equal shares.
- ``dirichlet(labels, parties, alpha, seed)``: label skew after Hsu et al. 2019 ("Measuring
  the Effects of Non-Identical Data Distribution"): for every class, the share each party
  gets is drawn from ``Dir(alpha)``; small alpha gives each party few classes, large alpha
  approaches IID.
- ``vertical(columns, parties, seed=None)``: split feature columns (vertical federated
  learning): every party holds all rows and a disjoint set of columns.
- ``label_skew(labels, parts)``: how far parties' label distributions are from the global one.
- ``test_rows(seed, rows, fraction)`` and ``held_rows(rng, rows, drop)``: for record linkage
  demos (PSI, vertical learning): the held-out rows every party agrees on from the job seed,
  and the rows one party holds (all but ``drop`` it chose with its own generator).

Every function returns index arrays; the same arguments give the same arrays everywhere, so
each party of a simulation can compute the whole split and keep its own share.

Real deployments read each party's own data files instead: ``load_table(path)`` reads a .npz
or .csv file (never with pickle) into named columns, which is what ``ctx.data(name)`` returns
for a configured path, and ``xy_from_table`` turns such a table into features and labels.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fedcore.errors import ConfigError


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x46C0]))


def _check(n: int, parties: int) -> None:
    if n < 0 or parties < 1:
        raise ConfigError(f"cannot split {n} samples across {parties} parties")


def train_test_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train indices, test indices); the test set holds ``round(n * test_fraction)``."""
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"test fraction must be in [0, 1), got {test_fraction}")
    order = _rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def iid(n: int, parties: int, seed: int) -> list[np.ndarray]:
    """Indices ``0..n-1`` shuffled and cut into ``parties`` shares whose sizes differ by at most 1."""
    _check(n, parties)
    return [np.sort(part) for part in np.array_split(_rng(seed).permutation(n), parties)]


def dirichlet(labels: Sequence[int] | np.ndarray, parties: int, alpha: float, seed: int) -> list[np.ndarray]:
    """Label-skewed shares: per class, party proportions drawn from ``Dir(alpha, ..., alpha)``.

    Args:
        labels: the label of every sample.
        parties: how many shares.
        alpha: concentration (> 0); smaller means more skew.
        seed: seed of the draws and shuffles.
    """
    labels = np.asarray(labels)
    _check(len(labels), parties)
    if not alpha > 0:
        raise ConfigError(f"dirichlet alpha must be > 0, got {alpha}")
    rng = _rng(seed)
    shares: list[list[np.ndarray]] = [[] for _ in range(parties)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        proportions = rng.dirichlet(np.full(parties, float(alpha)))
        cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
        for party, chunk in enumerate(np.split(members, cuts)):
            shares[party].append(chunk)
    return [np.sort(np.concatenate(s)).astype(np.int64) for s in shares]


def vertical(columns: int | Sequence[str], parties: int, seed: int | None = None) -> list[np.ndarray]:
    """Feature columns cut into ``parties`` contiguous (or, with ``seed``, shuffled) groups.

    Args:
        columns: the number of columns, or their names (the result then indexes the names).
        parties: how many groups; each gets at least one column.
        seed: shuffle the columns first when given.
    """
    count = columns if isinstance(columns, int) else len(columns)
    if parties < 1 or count < parties:
        raise ConfigError(
            f"cannot split {count} feature columns across {parties} parties (one each at least)"
        )
    order = np.arange(count) if seed is None else _rng(seed).permutation(count)
    return [np.sort(part) for part in np.array_split(order, parties)]


def test_rows(seed: int, rows: int, fraction: float = 0.2) -> np.ndarray:
    """The held-out rows: a shared-seed choice, the same at every party."""
    rng = np.random.default_rng([seed, 0x7E57])
    return np.sort(rng.choice(rows, size=round(rows * fraction), replace=False))


def held_rows(rng: np.random.Generator, rows: int, drop: int = 5) -> np.ndarray:
    """The rows one party holds: all but ``drop`` chosen by its own generator."""
    dropped = rng.choice(rows, size=drop, replace=False)
    return np.setdiff1d(np.arange(rows), dropped)


def label_skew(labels: Sequence[int] | np.ndarray, parts: Sequence[np.ndarray]) -> float:
    """Mean total-variation distance between each non-empty share's label distribution and the global one.

    0 means every share has the global class mix; values near 1 mean disjoint classes.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    overall = np.array([np.mean(labels == c) for c in classes])
    distances = []
    for part in parts:
        if len(part) == 0:
            continue
        local = np.array([np.mean(labels[part] == c) for c in classes])
        distances.append(0.5 * np.abs(local - overall).sum())
    return float(np.mean(distances)) if distances else 0.0


def xy_from_table(table: Mapping[str, np.ndarray], label: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Features and labels from a loaded data file: arrays ``x`` and ``label`` (.npz), or columns (.csv).

    Raises:
        ConfigError: the label column is missing or the features are not numeric.
    """
    if label not in table:
        raise ConfigError(f"data has no label column {label!r} (columns: {', '.join(sorted(table))})")
    y = np.asarray(table[label])
    if "x" in table and np.ndim(table["x"]) == 2:
        x = np.asarray(table["x"], dtype=np.float32)
    else:
        names = [k for k in table if k != label]
        try:
            x = np.stack([np.asarray(table[k], dtype=np.float32) for k in names], axis=1)
        except ValueError:
            raise ConfigError("every feature column must be numeric") from None
    if len(x) != len(y):
        raise ConfigError(f"data has {len(x)} feature rows but {len(y)} labels")
    return x, y.astype(np.int64)


def load_table(path: Path) -> dict[str, np.ndarray]:
    """Load a data file into named columns (``.csv``, header row required) or arrays (``.npz``).

    Raises:
        ConfigError: the file is missing, of an unknown kind, or malformed.
    """
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, OSError) as exc:
            raise ConfigError(f"cannot read {path} as .npz: {exc}") from None
    if suffix == ".csv":
        return _load_csv(path)
    raise ConfigError(f"data file {path} must end in .npz or .csv")


def _load_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ConfigError(f"{path} is empty: a .csv data file needs a header row")
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        raise ConfigError(f"{path}: every row must have {len(header)} fields like the header")
    columns: dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        values = [row[index] for row in body]
        try:
            columns[name] = np.array([float(v) for v in values])
        except ValueError:
            columns[name] = np.array(values, dtype=str)
    return columns
