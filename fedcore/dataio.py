"""Reading a party's local data files (.npz, .csv) without pickle."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fedcore.errors import ConfigError


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
