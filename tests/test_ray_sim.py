"""``simulate_on_ray``: parties as Ray actors over mutual-TLS gRPC, on a local loopback Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from fedcore.errors import ConfigError
from fedcore.runtime import make_runtime
from fedcore.runtime._ray import acquire, release
from fedcore.sim import FaultPlan, simulate
from fedcore.sim.ray import simulate_on_ray

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
NAMES = ["alice", "bob", "carol"]
# The protocols both engines must agree on; each runs once it has been written.
PARAMS = {"plain_sum.py": {"dim": 6}, "secure_sum.py": {"dim": 6}, "he_sum.py": {"dim": 6, "key_bits": 1024}}
SCRIPTS = [name for name in PARAMS if (PROTOCOLS / name).exists()]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray instance on 127.0.0.1 for the whole module."""
    owner = acquire(None, 2)
    yield
    if owner:
        release()


def _close(a, b) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for key in a:
            _close(a[key], b[key])
    elif isinstance(a, (list, tuple)) and all(isinstance(x, str) for x in a):
        assert list(a) == list(b)
    elif isinstance(a, (np.ndarray, float, list, tuple)):
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-6)
    else:
        assert a == b


@pytest.mark.parametrize("script", SCRIPTS)
def test_ray_engine_matches_local_engine(script):
    path = PROTOCOLS / script
    params = PARAMS[script]
    on_ray = simulate_on_ray(
        path, names=NAMES, params=params, seed=11, timeout_s=60, runtime="threads", peer_timeout_s=20
    )
    with make_runtime("threads", workers=2) as runtime:
        local = simulate(path, names=NAMES, params=params, seed=11, runtime=runtime)
    assert on_ray.errors() == {}
    _close(on_ray.parties, local.parties)
    inputs = [on_ray.parties[name]["input"] for name in NAMES]
    np.testing.assert_allclose(on_ray.parties["alice"]["sum"], np.sum(inputs, axis=0), atol=1e-4)


def test_plain_sum_on_ray_is_the_sum_of_inputs():
    # default party runtime: the ray backend inside each actor, attached to the same cluster
    result = simulate_on_ray(
        PROTOCOLS / "plain_sum.py", names=NAMES, params={"dim": 5}, seed=2, peer_timeout_s=20
    )
    inputs = [result.parties[name]["input"] for name in NAMES]
    np.testing.assert_allclose(result.parties["alice"]["sum"], np.sum(inputs, axis=0))


def test_party_killed_before_start_fails_the_job_naming_it():
    result = simulate_on_ray(
        PROTOCOLS / "plain_sum.py",
        names=NAMES,
        params={"dim": 3},
        seed=0,
        timeout_s=30,
        kill={"bob": 0},
        runtime="threads",
    )
    errors = result.errors()
    assert "killed by fault injection" in errors["bob"]
    assert "PartyDropped" in errors["alice"] and "bob" in errors["alice"]
    assert "carol" not in errors


def test_party_going_dark_after_its_send_is_noticed_by_heartbeat(tmp_path):
    script = tmp_path / "two_rounds.py"
    script.write_text(
        "def main(ctx):\n"
        "    if ctx.party == 'alice':\n"
        "        first = ctx.gather('one')\n"
        "        second = ctx.gather('two')\n"
        "        return {'first': sorted(first), 'second': sorted(second)}\n"
        "    ctx.send('alice', 'one', 1)\n"
        "    ctx.send('alice', 'two', 2)\n"
        "    return {}\n"
    )
    result = simulate_on_ray(
        script,
        names=NAMES,
        seed=0,
        timeout_s=30,
        kill={"carol": 1},
        runtime="threads",
        heartbeat_s=0.2,
        peer_timeout_s=1.5,
    )
    errors = result.errors()
    assert "killed by fault injection" in errors["carol"]
    assert "PartyDropped" in errors["alice"] and "carol" in errors["alice"]
    assert result.parties["bob"] == {}


def test_simulate_engine_ray_takes_the_kill_of_a_fault_plan():
    result = simulate(
        PROTOCOLS / "plain_sum.py",
        engine="ray",
        names=NAMES,
        params={"dim": 3},
        timeout_s=30,
        faults=FaultPlan(kill={"bob": 0}),
        runtime="threads",
    )
    errors = result.errors()
    assert "killed by fault injection" in errors["bob"]
    assert "PartyDropped" in errors["alice"] and "bob" in errors["alice"]


def test_simulate_engine_ray_refuses_what_it_cannot_run():
    with pytest.raises(ConfigError, match="script file"):
        simulate(lambda ctx: None, engine="ray", names=NAMES)
    with pytest.raises(ConfigError, match="data"):
        simulate(PROTOCOLS / "plain_sum.py", engine="ray", names=NAMES, data={"alice": {"x": 1}})


def test_unknown_param_and_kill_name_are_config_errors():
    with pytest.raises(ConfigError):
        simulate_on_ray(PROTOCOLS / "plain_sum.py", names=NAMES, params={"nope": 1})
    with pytest.raises(ConfigError):
        simulate_on_ray(PROTOCOLS / "plain_sum.py", names=NAMES, kill={"mallory": 0})


def test_cli_engine_ray_with_address():
    import ray

    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedcore.cli",
            "simulate",
            str(PROTOCOLS / "plain_sum.py"),
            "--engine",
            "ray",
            "--party-names",
            "alice,bob",
            "--param",
            "dim=3",
            "--json",
            "--runtime",
            "inline",
            "--address",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    total = np.sum([out["parties"][name]["input"] for name in ("alice", "bob")], axis=0)
    np.testing.assert_allclose(out["parties"]["alice"]["sum"], total)
