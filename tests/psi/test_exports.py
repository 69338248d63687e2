"""The public surface of fedcore.psi is pinned."""

import fedcore.psi


def test_psi_exports() -> None:
    assert sorted(fedcore.psi.__all__) == sorted(
        [
            "BATCH_ITEMS",
            "Blinded",
            "Common",
            "Hop",
            "PairSession",
            "Reblind",
            "Reblinded",
            "RingSession",
            "RingStage",
            "Send",
            "Stage",
            "Tags",
            "decode_id",
            "encode_id",
            "intersect",
        ]
    )


def test_psi_send_is_the_one_session_action() -> None:
    import fedcore.session

    assert fedcore.psi.Send is fedcore.session.Send
