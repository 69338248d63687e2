"""Vertical federated logistic regression with Paillier (guest holds labels, hosts features).

``train(ctx, features, labels=None, ...)`` runs the Taylor-approximated hetero-LR of
``fedcore.vertical._protocol`` (read its header for the protocol and for what each party
learns); ``score(ctx, model, features)`` gives the guest probabilities for rows all parties
hold. Rows must already be aligned -- use ``fedcore.psi.intersect(..., return_positions=True)``.
"""

from fedcore.vertical._driver import SCHEMES, VerticalModel, make_plan, score, train
from fedcore.vertical._protocol import GuestSession, HostSession, Send, Stage, Training

__all__ = [
    "SCHEMES",
    "GuestSession",
    "HostSession",
    "Send",
    "Stage",
    "Training",
    "VerticalModel",
    "make_plan",
    "score",
    "train",
]
