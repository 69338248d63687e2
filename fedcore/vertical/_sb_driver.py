"""``train_secureboost``, ``predict_secureboost`` and model parts: SecureBoost sessions over a ``Context``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedcore import he
from fedcore.context import Context
from fedcore.errors import ConfigError, ProtocolError
from fedcore.session import Session, drive
from fedcore.vertical import _sb_tree as T
from fedcore.vertical._driver import roles
from fedcore.vertical._sb_binning import fit_binner
from fedcore.vertical._sb_crypto import PaillierScheme, PlainScheme
from fedcore.vertical._sb_protocol import GuestSession, HostSession

SCHEMES = ("paillier", "plain")
TAG_PREDICT = "sb/predict"
FORMAT = "fedcore.secureboost/1"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class GuestModel:
    """The guest's part: tree shapes, its own splits, host splits as (host, id), leaf weights."""

    guest: str
    hosts: tuple[str, ...]
    objective: str
    base_score: float
    columns: int
    trees: list[T.Tree] = field(repr=False)
    role = "guest"


@dataclass(frozen=True)
class HostModel:
    """A host's part: its split ids -> (column, threshold). Nothing else about the model."""

    guest: str
    host: str
    columns: int
    splits: dict[int, tuple[int, float]] = field(repr=False)
    role = "host"


def validation_rows(seed: int, rows: int, fraction: float) -> np.ndarray:
    """The public validation mask over the aligned training rows, from the job seed."""
    mask = np.zeros(rows, dtype=bool)
    if fraction > 0:
        rng = np.random.default_rng([seed, rows, 0x5B0057])
        mask[rng.choice(rows, max(1, round(rows * fraction)), replace=False)] = True
    return mask


def train_secureboost(
    ctx: Context,
    features: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    params: T.BoostParams | None = None,
    guest: str | None = None,
    hosts: Sequence[str] | None = None,
    key_bits: int = 1024,
    scheme: str = "paillier",
    keys: tuple[Any, Any] | None = None,
    timeout: float | None = None,
) -> GuestModel | HostModel:
    """Train SecureBoost on aligned rows (see ``fedcore.vertical._sb_protocol``).

    Args:
        ctx: this party's context.
        features: this party's columns for the aligned training rows, in the aligned order.
        labels: the guest's labels (0/1 for "binary"); hosts pass None.
        params: the public plan (every party passes the same).
        guest: the label holder (default: the first party); hosts: default all others.
        key_bits: the guest's Paillier modulus size (1024: fast, ~80-bit security; 2048 for real data).
        scheme: "paillier", or "plain" -- NO encryption, for lossless checks in tests only.
        keys: the guest's (fedcore.he public, private) key pair to reuse one.
        timeout: per-receive deadline (default: the job's).

    Returns:
        this party's model part (the guest's holds the trees, a host's only its thresholds).

    Raises:
        ConfigError: bad roles, plan or data. ProtocolError: a peer broke the protocol.
    """
    params = params or T.BoostParams()
    guest, hosts = roles(ctx, guest, hosts, "SecureBoost")
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown SecureBoost scheme {scheme!r}: use one of {list(SCHEMES)}")
    if (ctx.party == guest) != (labels is not None):
        raise ConfigError("the guest passes labels and the hosts do not")
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"features must be a 2-D array, got shape {x.shape}")
    validation = validation_rows(ctx.seed, len(x), params.validation_fraction)
    binner = fit_binner(x[~validation], params.bins, ctx.rng)
    bins = binner.transform(x)
    id_rng = np.random.default_rng(int.from_bytes(os.urandom(32), "big"))
    if ctx.party != guest:
        host = HostSession(
            ctx.party, guest, bins, binner, validation, params, scheme, ctx.rng, id_rng, ctx.runtime
        )
        _drive(ctx, host, timeout, params.trees)
        splits = {k: (column, threshold) for k, (_, column, threshold) in host.splits.items()}
        return HostModel(guest, ctx.party, x.shape[1], splits)
    y = _check_labels(labels, len(x), params.objective)
    crypto = _guest_scheme(scheme, key_bits, keys)
    session = GuestSession(
        ctx.party, hosts, bins, binner, y, validation, params, crypto, ctx.rng, ctx.runtime
    )
    _drive(ctx, session, timeout, params.trees)
    return GuestModel(guest, hosts, params.objective, session.base, x.shape[1], session.trees)


def _check_labels(labels: Any, rows: int, objective: str) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (rows,) or not np.all(np.isfinite(y)):
        raise ConfigError(f"labels must be {rows} finite values, got shape {y.shape}")
    if objective == "binary" and not np.all((y == 0) | (y == 1)):
        raise ConfigError("binary SecureBoost needs labels in {0, 1}")
    return y


def _guest_scheme(scheme: str, key_bits: int, keys: tuple[Any, Any] | None) -> PaillierScheme | PlainScheme:
    if scheme == "plain":
        return PlainScheme()
    public, private = keys or he.generate_keypair(key_bits)
    return PaillierScheme(public, private)


def _drive(ctx: Context, session: GuestSession | HostSession, timeout: float | None, trees: int) -> None:
    """Run one party's session to its end, reporting the stage and tree before each wait."""

    def report(_: Session) -> None:
        ctx.progress(step=f"secureboost/{session.stage.value}", done=session.tree, total=trees)

    drive(ctx, session, timeout=timeout, report=report)


# --------------------------------------------------------------------------- prediction


def host_decisions(model: HostModel, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(split ids, bits) with bits[k, i] = row i goes left at split ids[k]: a host's whole answer."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.columns:
        raise ConfigError(f"{model.host}: features must have {model.columns} columns, got shape {x.shape}")
    ids = np.array(sorted(model.splits), dtype=np.int64)
    bits = np.zeros((len(ids), len(x)), dtype=bool)
    for k, split_id in enumerate(ids.tolist()):
        column, threshold = model.splits[split_id]
        bits[k] = x[:, column] <= threshold
    return ids, bits


def guest_predict(
    model: GuestModel, features: np.ndarray, decisions: dict[str, tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """The guest's walk: its own splits on ``features``, hosts' from their decision bits."""
    x = np.asarray(features, dtype=np.float64)
    index = {host: {int(i): k for k, i in enumerate(ids.tolist())} for host, (ids, _) in decisions.items()}

    def goes_left(node: T.Node, rows: np.ndarray) -> np.ndarray:
        if node.owner == model.guest:
            if node.threshold is None:
                raise ConfigError(f"SecureBoost model of {model.guest}: a split of its own has no threshold")
            left: np.ndarray = x[rows, node.feature] <= node.threshold
            return left
        _, bits = decisions[str(node.owner)]
        k = index[str(node.owner)].get(int(node.split_id or 0))
        if k is None:
            raise ProtocolError(f"SecureBoost predict: {node.owner} sent no decision for one of its splits")
        chosen: np.ndarray = bits[k, rows]
        return chosen

    raw = model.base_score + T.walk(model.trees, len(x), goes_left)
    return T.expit(raw) if model.objective == "binary" else raw


def predict_secureboost(
    ctx: Context, model: GuestModel | HostModel, features: np.ndarray, *, timeout: float | None = None
) -> np.ndarray | None:
    """Predictions for rows every party holds in the same order: the guest gets them, hosts None.

    Each host sends, for each of its split ids, which of these rows go left (bits, no
    thresholds); the guest walks the trees. Hosts learn nothing about the predictions.
    """
    if isinstance(model, HostModel):
        ids, bits = host_decisions(model, features)
        answer = {"ids": ids, "bits": np.packbits(bits, axis=1), "rows": bits.shape[1]}
        ctx.send(model.guest, TAG_PREDICT, answer)
        return None
    rows = len(np.asarray(features))
    decisions = {}
    for host, value in ctx.gather(TAG_PREDICT, timeout, parties=model.hosts).items():
        decisions[host] = _check_decisions(host, value, rows)
    return guest_predict(model, features, decisions)


def _check_decisions(host: str, value: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    if type(value) is not dict or set(value) != {"ids", "bits", "rows"} or value["rows"] != rows:
        raise ProtocolError(f"SecureBoost predict: decisions from {host} are malformed or for other rows")
    ids, packed = value["ids"], value["bits"]
    if not isinstance(ids, np.ndarray) or ids.dtype != np.int64 or ids.ndim != 1:
        raise ProtocolError(f"SecureBoost predict: split ids from {host} must be a 1-D int64 array")
    if (
        not isinstance(packed, np.ndarray)
        or packed.dtype != np.uint8
        or packed.shape != (len(ids), -(-rows // 8))
    ):
        raise ProtocolError(f"SecureBoost predict: decision bits from {host} have the wrong shape")
    return ids, np.unpackbits(packed, axis=1, count=rows).astype(bool)


# --------------------------------------------------------------------------- saving


def model_path(ctx: Context, name: str) -> Path:
    """Where this party keeps its part of model ``name``: always a file in its own folders.

    A plain ``NAME`` is ``NAME.<party>.json`` in this job's output folder (``ctx.output_path``),
    where training saves it. ``<job id>/NAME`` is that file in the output folder of an earlier
    job of this party (``ctx.output_path(..., scope="party")``), which is how prediction names
    the training job's parts. Neither form can point outside the party's folders.

    Raises:
        ConfigError: ``NAME`` is not a plain name (letters, digits, ``. _ -``).
        PolicyRefused: the job part leads outside this party's folders.
    """
    job, _, plain = name.rpartition("/") if type(name) is str else ("", "", name)
    if type(plain) is not str or not _MODEL_NAME.match(plain) or ".." in plain:
        raise ConfigError(
            f"model must be NAME or <training job id>/NAME with a plain NAME (letters, digits, . _ -), "
            f"got {str(name)[:80]!r}"
        )
    file = f"{plain}.{ctx.party}.json"
    return ctx.output_path(f"{job}/{file}", scope="party") if job else ctx.output_path(file)


def model_to_json(model: GuestModel | HostModel) -> dict[str, Any]:
    if isinstance(model, GuestModel):
        return {
            "format": FORMAT,
            "role": "guest",
            "guest": model.guest,
            "hosts": list(model.hosts),
            "objective": model.objective,
            "base_score": model.base_score,
            "columns": model.columns,
            "trees": [[node.to_json() for node in tree.nodes] for tree in model.trees],
        }
    return {
        "format": FORMAT,
        "role": "host",
        "guest": model.guest,
        "host": model.host,
        "columns": model.columns,
        "splits": [[k, c, t] for k, (c, t) in sorted(model.splits.items())],
    }


def model_from_json(doc: Any) -> GuestModel | HostModel:
    """Rebuild a model part from ``model_to_json``'s form.

    Raises:
        ConfigError: not a SecureBoost model part.
    """
    try:
        if doc["format"] != FORMAT:
            raise ValueError("format")
        if doc["role"] == "guest":
            trees = [T.Tree([T.Node.from_json(n) for n in tree]) for tree in doc["trees"]]
            return GuestModel(
                str(doc["guest"]),
                tuple(map(str, doc["hosts"])),
                str(doc["objective"]),
                float(doc["base_score"]),
                int(doc["columns"]),
                trees,
            )
        splits = {int(k): (int(c), float(t)) for k, c, t in doc["splits"]}
        return HostModel(str(doc["guest"]), str(doc["host"]), int(doc["columns"]), splits)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"not a SecureBoost model part ({exc})") from None


def save_model(model: GuestModel | HostModel, path: Path) -> Path:
    """Write one party's part as JSON (no pickle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model_to_json(model)))
    return path


def load_model(path: Path) -> GuestModel | HostModel:
    """Read a part written by ``save_model``.

    Raises:
        ConfigError: missing or malformed file.
    """
    if not Path(path).exists():
        raise ConfigError(
            f"no SecureBoost model part at {path}: to predict, name the training job's model as "
            "model=<training job id>/NAME"
        )
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read SecureBoost model {path}: {exc}") from None
    return model_from_json(doc)
