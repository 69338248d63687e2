"""The local runtime backends behave alike: results in order, errors surface with tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcore.errors import ConfigError
from fedcore.runtime import make_runtime
from fedcore.script import load_script

SCRIPT = Path(__file__).parents[1] / "scripts" / "square_on_runtime.py"
BACKENDS = ["inline", "threads", "processes"]


def add(a: int, b: int = 0) -> int:
    return a + b


def fail(message: str) -> None:
    raise KeyError(message)


@pytest.fixture(scope="module", params=BACKENDS)
def runtime(request: pytest.FixtureRequest):
    rt = make_runtime(request.param, workers=2)
    yield rt
    rt.close()


def test_submit_and_map_return_results_in_order(runtime) -> None:
    assert runtime.submit(add, 2, b=3).result() == 5
    assert runtime.map(abs, [-3, 2, -1, 0]) == [3, 2, 1, 0]


def test_a_failing_task_raises_its_own_exception_at_the_caller(runtime) -> None:
    with pytest.raises(KeyError, match="boom") as info:
        runtime.submit(fail, "boom").result()
    if runtime.name == "processes":  # the worker's traceback rides along as the cause
        assert "fail" in str(info.value.__cause__) and "Traceback" in str(info.value.__cause__)


def test_functions_defined_in_a_protocol_script_run_on_the_backend(runtime) -> None:
    script = load_script(SCRIPT)
    runtime.register_script(script.module_name, str(script.path))
    assert runtime.map(script.module.square, range(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="task 3 exploded"):
        runtime.submit(script.module.explode, 3).result()


def test_unknown_backend_and_bad_workers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown runtime backend"):
        make_runtime("gpu-cluster")
    with pytest.raises(ConfigError, match="positive integer"):
        make_runtime("threads", workers=0)
