"""The public surface is pinned: adding or removing a name is a decision, not an accident."""

import fedcore
import fedcore.errors
import fedcore.testing
import fedcore.transport
import fedcore.wire


def test_top_level_exports() -> None:
    assert sorted(fedcore.__all__) == [
        "Context",
        "ProgressEvent",
        "Runtime",
        "SimResult",
        "errors",
        "make_runtime",
        "simulate",
        "wire",
    ]


def test_error_tree() -> None:
    e = fedcore.errors
    assert sorted(e.__all__) == [
        "AuthError",
        "ConfigError",
        "DecodeError",
        "FedcoreError",
        "PartyDropped",
        "PolicyRefused",
        "ProtocolError",
        "Timeout",
    ]
    assert issubclass(e.Timeout, e.ProtocolError) and issubclass(e.PartyDropped, e.ProtocolError)
    for name in e.__all__:
        assert issubclass(getattr(e, name), e.FedcoreError)


def test_wire_and_testing_exports() -> None:
    wire_names = ["Layout", "MAGIC", "decode", "encode", "encode_parts", "message", "register"]
    assert sorted(fedcore.wire.__all__) == wire_names
    names = {"FaultPlan", "TransportConformance", "local_network", "expect_error"}
    assert names <= set(fedcore.testing.__all__)


def test_runtime_transport_and_fl_exports() -> None:
    import fedcore.fl
    import fedcore.runtime

    assert sorted(fedcore.runtime.__all__) == [
        "BACKENDS",
        "InlineRuntime",
        "ProcessRuntime",
        "Runtime",
        "ThreadRuntime",
        "make_runtime",
        "register_backend",
    ]
    assert sorted(fedcore.transport.__all__) == [
        "LocalNetwork",
        "LocalTransport",
        "Mailbox",
        "Transport",
        "check_party_names",
    ]
    assert sorted(fedcore.fl.__all__) == [
        "Aggregate",
        "FedAdagrad",
        "FedAdam",
        "FedAvg",
        "FedMedian",
        "FedProx",
        "FedYogi",
        "Krum",
        "STRATEGIES",
        "Strategy",
        "TrimmedMean",
        "Update",
        "make_strategy",
        "train_numpy",
        "train_torch",
    ]
