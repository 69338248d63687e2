"""Vertical federated learning with Paillier (guest holds labels, hosts features): LR and SecureBoost.

``train(ctx, features, labels=None, ...)`` runs the Taylor-approximated hetero-LR of
``fedcore.vertical._protocol`` (read its header for the protocol and for what each party
learns); ``score(ctx, model, features)`` gives the guest probabilities for rows all parties
hold. ``train_secureboost`` / ``predict_secureboost`` grow gradient-boosted trees the same way
(``fedcore.vertical._sb_protocol``'s header: what each party learns); each party keeps
only its own model part (``save_model`` / ``load_model``, JSON). Rows must already be
aligned -- use ``fedcore.psi.intersect(..., return_positions=True)``.
"""

from fedcore.session import Send  # the one action type of every protocol (fedcore.session)
from fedcore.vertical._driver import SCHEMES, VerticalModel, make_plan, score, train
from fedcore.vertical._protocol import GuestSession, HostSession, Stage, Training
from fedcore.vertical._sb_driver import (
    GuestModel,
    HostModel,
    load_model,
    model_path,
    predict_secureboost,
    save_model,
    train_secureboost,
)
from fedcore.vertical._sb_tree import BoostParams

__all__ = [
    "SCHEMES",
    "BoostParams",
    "GuestModel",
    "GuestSession",
    "HostModel",
    "HostSession",
    "Send",
    "Stage",
    "Training",
    "VerticalModel",
    "load_model",
    "make_plan",
    "model_path",
    "predict_secureboost",
    "save_model",
    "score",
    "train",
    "train_secureboost",
]
