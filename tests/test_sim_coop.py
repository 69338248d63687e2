"""The cooperative engine: scale, faults across worker processes, and waits that yield."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fedcore import Context, simulate
from fedcore.errors import ConfigError
from fedcore.runtime import make_runtime
from fedcore.testing import FaultPlan

ROOT = Path(__file__).parents[1]
PLAIN_SUM = ROOT / "protocols" / "plain_sum.py"
SECURE_SUM = ROOT / "protocols" / "secure_sum.py"


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("threads", workers=2)
    yield rt
    rt.close()


def _check_sum(result, leader: str = "p0") -> None:
    inputs = [r["input"] for r in result.parties.values() if "input" in r]
    assert np.allclose(result.parties[leader]["sum"], np.sum(inputs, axis=0))


def test_ten_thousand_parties_of_plain_sum_in_one_process(runtime) -> None:
    result = simulate(PLAIN_SUM, parties=10_000, params={"dim": 4}, runtime=runtime, workers=1)
    assert not result.errors()
    _check_sum(result)


def test_plain_sum_over_two_worker_processes_matches_one(runtime) -> None:
    one = simulate(PLAIN_SUM, parties=300, params={"dim": 5}, runtime=runtime, workers=1)
    two = simulate(PLAIN_SUM, parties=300, params={"dim": 5}, runtime=runtime, workers=2)
    assert not two.errors()
    assert list(two.parties) == list(one.parties)
    assert np.array_equal(one.parties["p0"]["sum"], two.parties["p0"]["sum"])


def _ping_ring(ctx: Context) -> dict:
    """Each party sends 20 numbered values to the next and checks what the previous sent."""
    i = ctx.parties.index(ctx.party)
    nxt, prev = ctx.parties[(i + 1) % len(ctx.parties)], ctx.parties[i - 1]
    for k in range(20):
        ctx.send(nxt, "n", k)
    return {"got": [ctx.recv(prev, "n", timeout=20) for _ in range(20)]}


def test_exactly_once_in_order_across_workers_under_duplication_reordering_and_delay(runtime) -> None:
    plan = FaultPlan(duplicate=0.3, reorder=0.3, delay={("p3", "*"): 0.05}, seed=3)
    result = simulate(_ping_ring, parties=8, faults=plan, runtime=runtime, workers=3)
    assert not result.errors()
    assert all(r["got"] == list(range(20)) for r in result.parties.values())


def test_a_party_killed_in_one_worker_is_named_in_another(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p5":
            for k in range(5):
                ctx.send("p0", "tick", k)
            return {}
        if ctx.party == "p0":
            return {"ticks": [ctx.recv("p5", "tick", timeout=20) for _ in range(5)]}
        return {}

    result = simulate(main, parties=6, kill={"p5": 2}, runtime=runtime, workers=2)
    assert "killed" in result.parties["p5"]["error"]
    assert "p5 dropped out" in result.parties["p0"]["error"]
    assert result.parties["p1"] == {}


@pytest.mark.slow
def test_secure_sum_with_two_thousand_parties_and_kills_on_two_workers(runtime) -> None:
    kill = {"p17": 1, "p1500": 2, "p999": 0}  # before masking, after it, and never started
    result = simulate(SECURE_SUM, parties=2000, params={"dim": 8}, kill=kill, runtime=runtime, workers=2)
    assert sorted(result.errors()) == sorted(kill)
    included = result.parties["p0"]["included"]
    assert "p17" not in included and "p999" not in included and len(included) >= 1997
    expected = np.sum([result.parties[p]["input"] for p in included if "input" in result.parties[p]], axis=0)
    assert np.allclose(result.parties["p0"]["sum"], expected, atol=1e-6)


def test_waiting_on_a_runtime_future_lets_the_other_parties_run(runtime) -> None:
    released = threading.Event()

    def main(ctx: Context) -> dict:
        if ctx.party == "p0":  # its task needs p1 and p2 to make progress first
            return {"released": ctx.runtime.submit(released.wait, 10).result()}
        if ctx.party == "p1":
            ctx.send("p2", "hello", 1)
            return {}
        ctx.recv("p1", "hello", timeout=10)
        released.set()
        return {}

    start = time.monotonic()
    result = simulate(main, parties=3, runtime=runtime, workers=1)
    assert result.parties["p0"] == {"released": True}
    assert time.monotonic() - start < 5.0


def test_runtime_map_waits_cooperatively_too(runtime) -> None:
    def main(ctx: Context) -> dict:
        return {"squares": ctx.runtime.map(lambda x: x * x, range(5))}

    result = simulate(main, parties=20, runtime=runtime, workers=1)
    assert all(r["squares"] == [0, 1, 4, 9, 16] for r in result.parties.values())


def test_receiving_from_a_thread_the_party_started_says_to_use_the_thread_engine(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p1":
            ctx.send("p0", "x", 1)
            return {}
        box: dict = {}

        def listen() -> None:
            try:
                box["value"] = ctx.recv("p1", "later", timeout=1)
            except BaseException as exc:  # recorded for the assertion
                box["error"] = exc

        listener = threading.Thread(target=listen)
        listener.start()
        listener.join()
        return {"error": type(box["error"]).__name__, "text": str(box["error"])}

    coop = simulate(main, parties=2, runtime=runtime)
    assert coop.parties["p0"]["error"] == "ConfigError" and "--engine threads" in coop.parties["p0"]["text"]
    threads = simulate(main, parties=2, runtime=runtime, engine="threads")
    assert threads.parties["p0"]["error"] == "ProtocolError"  # a real wait: p1 finished without it


def test_engine_and_workers_are_checked(runtime) -> None:
    with pytest.raises(ConfigError, match="engine"):
        simulate(PLAIN_SUM, parties=2, runtime=runtime, engine="fibers")
    with pytest.raises(ConfigError, match="--engine threads"):
        simulate(PLAIN_SUM, parties=2, runtime=runtime, engine="coop", transport="grpc")
    with pytest.raises(ConfigError, match="workers"):
        simulate(PLAIN_SUM, parties=2, runtime=runtime, workers=0)
