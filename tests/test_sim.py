"""Simulation: many parties in one process, faults, aborts, and what scripts see."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from fedcore import Context, simulate
from fedcore.errors import ConfigError
from fedcore.runtime import make_runtime

ROOT = Path(__file__).parents[1]
PLAIN_SUM = ROOT / "protocols" / "plain_sum.py"


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("threads", workers=2)
    yield rt
    rt.close()


def test_plain_sum_equals_the_sum_of_inputs(runtime) -> None:
    result = simulate(PLAIN_SUM, parties=5, params={"dim": 7}, runtime=runtime)
    inputs = [r["input"] for r in result.parties.values()]
    assert np.allclose(result.parties["p0"]["sum"], np.sum(inputs, axis=0))
    assert all("sum" not in r for name, r in result.parties.items() if name != "p0")


def test_a_thousand_parties(runtime) -> None:
    result = simulate(PLAIN_SUM, parties=1000, params={"dim": 100}, runtime=runtime)
    assert not result.errors()
    total = np.sum([r["input"] for r in result.parties.values()], axis=0)
    assert np.allclose(result.parties["p0"]["sum"], total)


def test_inputs_depend_on_seed_and_party_only(runtime) -> None:
    a = simulate(PLAIN_SUM, parties=3, seed=5, runtime=runtime)
    b = simulate(PLAIN_SUM, parties=3, seed=5, kill={"p1": 0}, runtime=runtime)
    c = simulate(PLAIN_SUM, parties=3, seed=6, runtime=runtime)
    assert np.array_equal(a.parties["p2"]["input"], b.parties["p2"]["input"])
    assert not np.array_equal(a.parties["p2"]["input"], c.parties["p2"]["input"])
    assert not np.array_equal(a.parties["p1"]["input"], a.parties["p2"]["input"])


def test_a_failing_party_aborts_the_others_fast(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p2":
            ctx.progress(step="load")
            raise ValueError("bad data file")
        return {"got": ctx.recv("p2", "never", timeout=30)}

    start = time.monotonic()
    result = simulate(main, parties=3, runtime=runtime)
    assert time.monotonic() - start < 1.0
    assert "ValueError: bad data file" in result.parties["p2"]["error"]
    for name in ("p0", "p1"):
        error = result.parties[name]["error"]
        assert error.startswith("PartyDropped") and "p2" in error and "'load'" in error


def test_killed_party_after_k_messages_is_named_by_those_waiting(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p1":
            for i in range(5):
                ctx.send("p0", "tick", i)
            return {}
        return {"ticks": [ctx.recv("p1", "tick", timeout=10) for _ in range(5)]}

    result = simulate(main, parties=2, kill={"p1": 3}, runtime=runtime)
    assert "killed" in result.parties["p1"]["error"]
    assert "p1 dropped out" in result.parties["p0"]["error"]


def test_gather_allow_missing_skips_dropped_parties(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party != "p0":
            ctx.send("p0", "v", ctx.party)
            return {}
        return {"from": sorted(ctx.gather("v", timeout=10, allow_missing=True))}

    result = simulate(main, parties=4, kill={"p2": 0}, runtime=runtime)
    assert result.parties["p0"]["from"] == ["p1", "p3"]


def test_waiting_on_a_finished_party_fails_instead_of_hanging(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            return {"v": ctx.recv("p1", "never", timeout=30)}
        return {}

    start = time.monotonic()
    result = simulate(main, parties=2, runtime=runtime)
    assert time.monotonic() - start < 5
    assert "finished its script without sending" in result.parties["p0"]["error"]


def test_values_cross_parties_through_the_codec(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p0":
            ctx.send("p1", "obj", object())
        return {}

    result = simulate(main, parties=2, runtime=runtime)
    assert "cannot encode" in result.parties["p0"]["error"]


def test_data_sources_from_files_and_values(tmp_path: Path, runtime) -> None:
    np.savez(tmp_path / "x.npz", features=np.eye(2))
    (tmp_path / "t.csv").write_text("age,name\n31,ann\n45,bo\n")

    def main(ctx: Context) -> dict:
        return {"x": ctx.data("x")["features"], "age": ctx.data("t")["age"], "v": ctx.data("v")}

    data = {"p0": {"x": str(tmp_path / "x.npz"), "t": tmp_path / "t.csv", "v": [1, 2]}}
    result = simulate(main, parties=1, data=data, runtime=runtime)
    assert np.array_equal(result.parties["p0"]["x"], np.eye(2))
    assert result.parties["p0"]["age"].tolist() == [31.0, 45.0]


def test_missing_data_source_names_what_is_configured(runtime) -> None:
    def main(ctx: Context) -> dict:
        return ctx.data("nope")

    result = simulate(main, parties=1, data={"p0": {"digits": [1]}}, runtime=runtime)
    assert "no data source 'nope' (configured: digits)" in result.parties["p0"]["error"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"names": ["a", "a"]}, "given twice"),
        ({"parties": 0}, "at least one party"),
        ({"kill": {"zed": 1}}, "not a party"),
        ({"params": {"nope": 1}}, "unknown parameter 'nope'"),
        ({"params": {"dim": 2.5}}, "--param dim=2.5: expected int"),
        ({"params": {"dim": "abc"}}, "--param dim='abc': expected int"),
        ({"job_id": "../x"}, "job id '../x'"),
    ],
)
def test_bad_simulation_arguments_are_config_errors(kwargs: dict, match: str, runtime) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate(PLAIN_SUM, runtime=runtime, **kwargs)


def test_each_party_has_a_typed_outcome(runtime) -> None:
    def main(ctx: Context) -> dict:
        if ctx.party == "p1":
            ctx.progress(step="load")
            raise ValueError("bad data file")
        return {"ok": ctx.party}

    result = simulate(main, parties=3, runtime=runtime)
    bad = result.outcomes["p1"]
    assert not bad.ok and (bad.party, bad.step, bad.kind) == ("p1", "load", "ValueError")
    assert "bad data file" in bad.message
    assert set(result.errors()) == {"p1"} and result.errors()["p1"].startswith("ValueError: bad data file")
    # the view every older caller reads: the result itself, or the error as JSON
    assert result.parties["p1"]["kind"] == "ValueError" and result.parties["p1"]["step"] == "load"
    killed = simulate(main, parties=2, kill={"p0": 0}, runtime=runtime).outcomes["p0"]
    assert not killed.ok and killed.kind == "PartyKilled"


def test_params_are_converted_before_any_party_starts(runtime) -> None:
    started = []

    def main(ctx: Context, rounds: int = 1, secure: bool = False) -> dict:
        started.append(ctx.party)
        return {"rounds": rounds, "secure": secure}

    with pytest.raises(ConfigError, match="--param secure='maybe': expected bool"):
        simulate(main, parties=2, params={"secure": "maybe"}, runtime=runtime)
    assert started == []
    ok = simulate(main, parties=1, params={"rounds": "3", "secure": "yes"}, runtime=runtime)
    assert ok.parties["p0"] == {"rounds": 3, "secure": True}


def test_each_party_writes_in_its_own_folder_of_the_job(tmp_path: Path, runtime) -> None:
    def main(ctx: Context, name: str = "out.txt") -> dict:
        path = ctx.output_path(name)
        path.write_text(ctx.party)
        return {"path": str(path)}

    result = simulate(
        main, parties=2, params={"name": "a/b.txt"}, output_dir=tmp_path, job_id="j1", runtime=runtime
    )
    assert result.job_id == "j1" and result.output_dir == tmp_path
    for party in ("p0", "p1"):
        assert (tmp_path / party / "j1" / "a" / "b.txt").read_text() == party
    refused = simulate(
        main, parties=2, params={"name": str(tmp_path / "x")}, output_dir=tmp_path, runtime=runtime
    )
    assert {o.kind for o in refused.outcomes.values()} == {"PolicyRefused"}
    assert not (tmp_path / "x").exists()


def test_a_run_that_writes_nothing_leaves_no_folder(tmp_path: Path, runtime) -> None:
    result = simulate(PLAIN_SUM, parties=2, output_dir=tmp_path / "out", runtime=runtime)
    assert result.job_id.startswith("sim-") and not (tmp_path / "out").exists()
