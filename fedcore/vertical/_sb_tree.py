"""SecureBoost's plain parts: training parameters, losses, split gain, trees and their walk.

Everything here is ordinary gradient boosting (Chen & Guestrin 2016, eqs. 5-7, with the
conventions of scikit-learn's HistGradientBoosting): leaf weight w = -lr * G / (H + lambda),
split gain GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda), a split kept only when
both children have hessian sum >= min_child_weight and >= min_samples_leaf rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore.errors import ConfigError

OBJECTIVES = ("binary", "regression")


@dataclass(frozen=True)
class BoostParams:
    """The public training plan every party shares (they run the same script and params)."""

    objective: str = "binary"
    trees: int = 10
    max_depth: int = 3
    learning_rate: float = 0.1
    bins: int = 32
    min_child_weight: float = 1e-3
    min_samples_leaf: int = 20
    l2: float = 0.0
    subsample: float = 1.0
    colsample: float = 1.0
    validation_fraction: float = 0.0
    patience: int = 3
    min_gain: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not (
            type(self.trees) is int
            and self.trees >= 1
            and type(self.max_depth) is int
            and self.max_depth >= 1
        ):
            problems.append(f"trees and max_depth must be ints >= 1, got {self.trees!r}, {self.max_depth!r}")
        if not 0 < self.learning_rate <= 10:
            problems.append(f"learning_rate must be in (0, 10], got {self.learning_rate!r}")
        if not (0 < self.subsample <= 1 and 0 < self.colsample <= 1):
            problems.append(
                f"subsample and colsample must be in (0, 1], got {self.subsample}, {self.colsample}"
            )
        if not 0 <= self.validation_fraction < 1 or self.patience < 1:
            problems.append("validation_fraction must be in [0, 1) and patience >= 1")
        if self.l2 < 0 or self.min_child_weight < 0 or self.min_samples_leaf < 1 or self.min_gain < 0:
            problems.append("l2, min_child_weight and min_gain must be >= 0, min_samples_leaf >= 1")
        if problems:
            raise ConfigError("SecureBoost parameters: " + "; ".join(problems))


# --------------------------------------------------------------------------- losses


def base_score(objective: str, y: np.ndarray) -> float:
    """The constant first prediction (raw scale): log-odds of the mean, or the mean."""
    mean = float(np.mean(y))
    if objective == "regression":
        return mean
    mean = min(max(mean, 1e-12), 1 - 1e-12)
    return math.log(mean / (1 - mean))


def gradients(objective: str, raw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of the loss per row at raw scores ``raw``."""
    if objective == "regression":
        return raw - y, np.ones_like(raw)
    p = expit(raw)
    return p - y, p * (1 - p)


def loss(objective: str, raw: np.ndarray, y: np.ndarray) -> float:
    """Mean log loss, or half the mean squared error."""
    if objective == "regression":
        return float(0.5 * np.mean((raw - y) ** 2))
    return float(np.mean(np.logaddexp(0.0, raw) - y * raw))


def expit(raw: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
    return result


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    """The best split of one party's histogram: gain, column slot, bin ("bin <= b goes left")."""

    gain: float
    slot: int
    bin: int


def best_split(hist: np.ndarray, params: BoostParams) -> Split | None:
    """The best split of a (columns, bins, 3) histogram of (G, H, count), or None.

    Every column's bins sum to the node's totals, so the totals come from column 0.
    """
    if hist.shape[0] == 0 or hist.shape[1] < 2:
        return None
    left = np.cumsum(hist, axis=1)[:, :-1, :]
    total = hist[0].sum(axis=0)
    right = total - left
    lam = params.l2
    gain = (
        left[..., 0] ** 2 / (left[..., 1] + lam + 1e-300)
        + right[..., 0] ** 2 / (right[..., 1] + lam + 1e-300)
        - total[0] ** 2 / (total[1] + lam + 1e-300)
    )
    ok = (
        (left[..., 1] >= params.min_child_weight)
        & (right[..., 1] >= params.min_child_weight)
        & (left[..., 2] >= params.min_samples_leaf - 0.5)
        & (right[..., 2] >= params.min_samples_leaf - 0.5)
    )
    gain = np.where(ok, gain, -np.inf)
    best = int(np.argmax(gain))
    slot, bin_ = divmod(best, gain.shape[1])
    value = float(gain[slot, bin_])
    if not value > params.min_gain or not np.isfinite(value):
        return None
    return Split(value, slot, bin_)


def leaf_value(g_sum: float, h_sum: float, params: BoostParams) -> float:
    return float(-params.learning_rate * g_sum / (h_sum + params.l2 + 1e-300))


# --------------------------------------------------------------------------- trees


@dataclass
class Node:
    """A node of the guest's tree. A host's split is only (owner, split_id); the guest's own
    split keeps its column and threshold. Leaves have ``value``."""

    owner: str | None = None
    split_id: int | None = None
    feature: int | None = None
    threshold: float | None = None
    left: int = -1
    right: int = -1
    value: float = 0.0

    @property
    def is_leaf(self) -> bool:
        return self.owner is None

    def to_json(self) -> dict[str, Any]:
        if self.is_leaf:
            return {"value": self.value}
        out: dict[str, Any] = {"owner": self.owner, "left": self.left, "right": self.right}
        if self.split_id is not None:
            out["split_id"] = self.split_id
        else:
            out["feature"], out["threshold"] = self.feature, self.threshold
        return out

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Node:
        if "value" in item:
            return cls(value=float(item["value"]))
        return cls(
            owner=str(item["owner"]),
            split_id=_opt_int(item.get("split_id")),
            feature=_opt_int(item.get("feature")),
            threshold=_opt_float(item.get("threshold")),
            left=int(item["left"]),
            right=int(item["right"]),
        )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class Tree:
    nodes: list[Node] = field(default_factory=list)


def walk(trees: list[Tree], rows: int, goes_left: Any) -> np.ndarray:
    """The sum of leaf values per row; ``goes_left(node, row_indices)`` decides each split."""
    total = np.zeros(rows)
    for tree in trees:
        where = np.zeros(rows, dtype=np.int64)
        pending = [0]
        while pending:
            index = pending.pop()
            node = tree.nodes[index]
            rows_here = np.flatnonzero(where == index)
            if node.is_leaf:
                total[rows_here] += node.value
                continue
            left = np.asarray(goes_left(node, rows_here), dtype=bool)
            where[rows_here[left]] = node.left
            where[rows_here[~left]] = node.right
            pending += [node.left, node.right]
    return total
