"""Model parameters as a list of numpy arrays: flatten, restore, validate.

Every party holds the global model as ``list[np.ndarray]`` in a fixed order (the order of
the model's ``state_dict``). Updates that arrive from other parties are checked against the
global parameters' shapes before any arithmetic touches them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedcore.errors import ProtocolError

Params = list[np.ndarray]


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate arrays into one float64 vector (empty list -> empty vector)."""
    if not arrays:
        return np.zeros(0)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> Params:
    """Cut ``vector`` back into arrays shaped and typed like ``like``.

    Raises:
        ValueError: the vector's length differs from the total size of ``like``.
    """
    sizes = [int(np.asarray(a).size) for a in like]
    if vector.ndim != 1 or vector.size != sum(sizes):
        raise ValueError(f"a vector of {vector.size} values cannot fill arrays of {sum(sizes)} values")
    out: Params = []
    offset = 0
    for array, size in zip(like, sizes, strict=True):
        array = np.asarray(array)
        out.append(vector[offset : offset + size].reshape(array.shape).astype(array.dtype))
        offset += size
    return out


def check_like(arrays: object, like: Sequence[np.ndarray], *, who: str) -> Params:
    """Return ``arrays`` as float64 arrays if they match ``like`` in count and shapes and are finite.

    Raises:
        ProtocolError: ``who`` sent something else (the message names the first mismatch).
    """
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(like):
        raise ProtocolError(f"{who} sent {type(arrays).__name__} instead of {len(like)} parameter arrays")
    out: Params = []
    for index, (array, ref) in enumerate(zip(arrays, like, strict=True)):
        if not isinstance(array, np.ndarray) or array.shape != np.shape(ref) or array.dtype.kind not in "fiu":
            raise ProtocolError(f"{who} sent parameter {index} with the wrong shape or type")
        value = array.astype(np.float64)
        if not np.all(np.isfinite(value)):
            raise ProtocolError(f"{who} sent parameter {index} with NaN or infinite values")
        out.append(value)
    return out


def subtract(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> Params:
    """Element-wise ``a - b`` as float64 arrays."""
    return [
        np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64) for x, y in zip(a, b, strict=True)
    ]


def add(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> Params:
    """Element-wise ``a + b``, keeping the dtypes of ``a``."""
    return [(np.asarray(x) + np.asarray(y)).astype(np.asarray(x).dtype) for x, y in zip(a, b, strict=True)]


def global_norm(arrays: Sequence[np.ndarray]) -> float:
    """The L2 norm of all arrays taken together as one vector."""
    return float(np.sqrt(sum(float(np.sum(np.square(np.asarray(a, dtype=np.float64)))) for a in arrays)))
