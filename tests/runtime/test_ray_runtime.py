"""The ray backend behaves like the processes backend, on a local loopback Ray instance."""

from __future__ import annotations

import textwrap
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from fedcore.errors import ConfigError
from fedcore.runtime import make_runtime
from fedcore.script import load_script
from fedcore.sim import simulate

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"

SCRIPT = textwrap.dedent(
    """
    import numpy as np

    class Box:
        def __init__(self, value):
            self.value = value

    def square(x):
        return x * x

    def boxed(x):
        return Box(x + 1)

    def norm(vector, *, scale=1.0):
        return float(np.linalg.norm(vector)) * scale

    def fail(message):
        raise KeyError(message)

    def main(ctx):
        return {"squares": ctx.runtime.map(square, [1, 2, 3]), "party": ctx.party}
    """
)


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("ray", workers=2)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def script(runtime, tmp_path_factory):
    path = tmp_path_factory.mktemp("scripts") / "tasks.py"
    path.write_text(SCRIPT)
    loaded = load_script(path)
    runtime.register_script(loaded.module_name, str(loaded.path))
    return loaded


def test_backend_is_ray(runtime):
    assert runtime.name == "ray"
    assert runtime.workers == 2


def test_submit_returns_concurrent_future(runtime, script):
    future = runtime.submit(script.module.norm, np.array([3.0, 4.0]), scale=2.0)
    assert isinstance(future, Future)
    assert future.result(timeout=60) == 10.0


def test_map_keeps_order(runtime, script):
    assert runtime.map(script.module.square, range(12)) == [x * x for x in range(12)]


def test_map_of_builtin(runtime):
    assert runtime.map(abs, [-3, 2, -1]) == [3, 2, 1]


def test_script_class_round_trips(runtime, script):
    box = runtime.submit(script.module.boxed, 41).result(timeout=60)
    assert isinstance(box, script.module.Box)
    assert box.value == 42


def test_error_is_original_type_with_remote_traceback(runtime, script):
    future = runtime.submit(script.module.fail, "no such key")
    with pytest.raises(KeyError) as caught:
        future.result(timeout=60)
    assert type(caught.value) is KeyError
    assert caught.value.args == ("no such key",)
    remote = str(caught.value.__cause__)
    assert "tasks.py" in remote and "in fail" in remote


def test_simulate_with_ray_runtime_runs_script_tasks(runtime, script):
    result = simulate(script.path, parties=2, runtime=runtime)
    assert result.parties == {
        "p0": {"squares": [1, 4, 9], "party": "p0"},
        "p1": {"squares": [1, 4, 9], "party": "p1"},
    }


PROTOCOL_PARAMS = {
    "plain_sum.py": {"dim": 5},
    "secure_sum.py": {"dim": 5},
    # one value per ciphertext so that encryption is split into several runtime tasks
    "he_sum.py": {"dim": 64, "key_bits": 1024, "packed": False},
}
PROTOCOL_SCRIPTS = [name for name in PROTOCOL_PARAMS if (PROTOCOLS / name).exists()]


@pytest.mark.parametrize("name", PROTOCOL_SCRIPTS)
def test_protocol_on_ray_runtime_equals_pool_runtime(runtime, name):
    script, params = PROTOCOLS / name, PROTOCOL_PARAMS[name]
    on_ray = simulate(script, parties=3, params=params, seed=7, runtime=runtime)
    with make_runtime("threads", workers=2) as other:
        reference = simulate(script, parties=3, params=params, seed=7, runtime=other)
    assert on_ray.errors() == {}
    inputs = [on_ray.parties[p]["input"] for p in ("p0", "p1", "p2")]
    np.testing.assert_allclose(on_ray.parties["p0"]["sum"], np.sum(inputs, axis=0), atol=1e-4)
    np.testing.assert_allclose(on_ray.parties["p0"]["sum"], reference.parties["p0"]["sum"], atol=1e-9)


def test_bad_address_is_config_error():
    with pytest.raises(ConfigError):
        make_runtime("ray", workers=1, address="")


def test_bench_runtime_encrypts_correctly_on_each_backend(runtime):
    import argparse

    from fedcore.bench import runtime as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--dim", "500", "--bits", "1024", "--repeats", "1", "--backends=threads,ray"])
    result = bench.run(args)
    rows = {row["backend"]: row for row in result["rows"]}
    assert set(rows) == {"threads", "ray"}
    for row in rows.values():
        assert row["ciphertexts"] > 1
        assert row["max_abs_error"] < 1e-5
