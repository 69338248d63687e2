"""fedcore: federated and privacy-preserving compute between organizations."""

from fedcore import errors, wire
from fedcore.context import Context, ProgressEvent
from fedcore.runtime import Runtime, make_runtime
from fedcore.sim import SimResult, simulate

__version__ = "0.1.0"

__all__ = [
    "Context",
    "ProgressEvent",
    "Runtime",
    "SimResult",
    "errors",
    "make_runtime",
    "simulate",
    "wire",
]
