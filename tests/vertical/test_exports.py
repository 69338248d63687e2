"""The public surface of fedcore.vertical is pinned."""

import fedcore.vertical


def test_vertical_exports() -> None:
    assert sorted(fedcore.vertical.__all__) == sorted([
        "SCHEMES", "GuestSession", "HostSession", "Send", "Stage", "Training", "VerticalModel",
        "make_plan", "score", "train",
    ])
