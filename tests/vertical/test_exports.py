"""The public surface of fedcore.vertical is pinned."""

import fedcore.vertical


def test_vertical_exports() -> None:
    assert sorted(fedcore.vertical.__all__) == sorted(
        [
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
            "BoostParams",
            "GuestModel",
            "HostModel",
            "load_model",
            "model_path",
            "predict_secureboost",
            "save_model",
            "train_secureboost",
        ]
    )


def test_vertical_send_is_the_one_session_action() -> None:
    import fedcore.session

    assert fedcore.vertical.Send is fedcore.session.Send
