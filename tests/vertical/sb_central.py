"""Test helper: SecureBoost parts saved by protocols/secureboost.py, joined and evaluated centrally."""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer

from fedcore import data
from fedcore.vertical._sb_driver import model_from_json
from fedcore.vertical._sb_tree import expit, walk

SCRIPT = Path(__file__).resolve().parents[2] / "protocols" / "secureboost.py"


def central_predictions(
    folder: Callable[[str], Path], name: str, names: list[str], rows: np.ndarray
) -> np.ndarray:
    """Every party's part (from ``folder(party)``) in one place, thresholds applied to the plain
    columns directly."""
    x = load_breast_cancer(return_X_y=True)[0][rows]
    parts = {p: model_from_json(json.loads((folder(p) / f"{name}.{p}.json").read_text())) for p in names}
    columns = data.vertical(x.shape[1], len(names))
    blocks = {p: x[:, c] for p, c in zip(names, columns, strict=True)}
    guest = parts[names[0]]

    def goes_left(node, at):
        if node.owner == names[0]:
            return blocks[node.owner][at, node.feature] <= node.threshold
        column, threshold = parts[node.owner].splits[node.split_id]
        return blocks[node.owner][at, column] <= threshold

    return expit(guest.base_score + walk(guest.trees, len(x), goes_left))
