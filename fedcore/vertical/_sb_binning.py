"""Quantile binning of one party's own columns, as scikit-learn's HistGradientBoosting bins them.

Each party bins only its own features, on its own training rows; thresholds never leave
it. A column with at most ``bins`` distinct values gets the midpoints between them; any
other column the ``bins``-quantiles (averaged inverted CDF, as scikit-learn 1.5+) of a sample of at most
``SKETCH_ROWS`` rows -- an exact quantile sketch of that sample, the rule of
``sklearn.ensemble._hist_gradient_boosting.binning``. A value x falls in bin i when
thresholds[i-1] < x <= thresholds[i], so "bin <= b goes left" is "x <= thresholds[b]".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcore.errors import ConfigError

SKETCH_ROWS = 200_000
MAX_BINS = 255


@dataclass(frozen=True)
class Binner:
    """Per-column thresholds; ``transform`` maps values to uint8 bin indices."""

    thresholds: tuple[np.ndarray, ...]

    @property
    def columns(self) -> int:
        return len(self.thresholds)

    def bins_of(self, column: int) -> int:
        return len(self.thresholds[column]) + 1

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Bin indices of ``x`` (rows x columns), uint8."""
        values = _check_matrix(x, self.columns)
        out = np.empty(values.shape, dtype=np.uint8)
        for j, cut in enumerate(self.thresholds):
            out[:, j] = np.searchsorted(cut, values[:, j], side="left")
        return out


def fit_binner(x: np.ndarray, bins: int, rng: np.random.Generator) -> Binner:
    """Thresholds for every column of ``x`` from its rows (``rng`` samples large sets).

    Raises:
        ConfigError: ``bins`` outside 2..255, or ``x`` not a finite 2-D array.
    """
    if type(bins) is not int or not 2 <= bins <= MAX_BINS:
        raise ConfigError(f"bins must be an int in 2..{MAX_BINS}, got {bins!r}")
    values = _check_matrix(x, None)
    if len(values) > SKETCH_ROWS:
        values = values[np.sort(rng.choice(len(values), SKETCH_ROWS, replace=False))]
    return Binner(tuple(_column_thresholds(values[:, j], bins) for j in range(values.shape[1])))


def _column_thresholds(column: np.ndarray, bins: int) -> np.ndarray:
    distinct = np.unique(column)
    if len(distinct) <= bins:
        middles: np.ndarray = (distinct[:-1] + distinct[1:]) * 0.5
        return middles
    percentiles = np.linspace(0, 100, num=bins + 1)[1:-1]
    return np.asarray(np.percentile(column, percentiles, method="averaged_inverted_cdf"), dtype=np.float64)


def _check_matrix(x: np.ndarray, columns: int | None) -> np.ndarray:
    values = np.asarray(x, dtype=np.float64)
    if values.ndim != 2 or (columns is not None and values.shape[1] != columns):
        want = "(rows, columns)" if columns is None else f"(rows, {columns})"
        raise ConfigError(f"features must be a 2-D array of shape {want}, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ConfigError("features must be finite: impute missing values before SecureBoost")
    return values
