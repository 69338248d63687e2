"""The public surface of fedcore.psi and fedcore.vertical is pinned."""

import fedcore.psi
import fedcore.vertical


def test_psi_exports() -> None:
    assert sorted(fedcore.psi.__all__) == sorted([
        "BATCH_ITEMS", "Blinded", "PairSession", "Reblind", "Reblinded", "Send", "Stage",
        "decode_id", "encode_id", "intersect",
    ])


def test_vertical_exports() -> None:
    assert sorted(fedcore.vertical.__all__) == sorted([
        "SCHEMES", "GuestSession", "HostSession", "Send", "Stage", "Training", "VerticalModel",
        "make_plan", "score", "train",
    ])
