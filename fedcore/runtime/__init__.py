"""The local task runtime: one small interface, several backends.

``make_runtime("processes", workers=None)`` returns a ``Runtime`` with ``submit``, ``map``
and ``close``. A task that raises surfaces at the caller as that exception; on the
processes backend its ``__cause__`` carries the worker's traceback.
"""

from fedcore.runtime._base import BACKENDS, make_runtime, register_backend
from fedcore.runtime._interface import Runtime
from fedcore.runtime._pool import InlineRuntime, ProcessRuntime, ThreadRuntime

__all__ = [
    "BACKENDS",
    "InlineRuntime",
    "ProcessRuntime",
    "Runtime",
    "ThreadRuntime",
    "make_runtime",
    "register_backend",
]
