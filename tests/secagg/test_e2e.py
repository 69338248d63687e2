"""secure_sum end to end through fedcore.sim.simulate: kills at every stage, failures, floats and ints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcore.context import party_rng
from fedcore.runtime import make_runtime
from fedcore.secagg import secure_sum
from fedcore.sim import simulate
from fedcore.testing import FaultPlan

SCRIPT = Path(__file__).resolve().parents[2] / "protocols" / "secure_sum.py"


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("inline")
    yield rt
    rt.close()


def _float_main(ctx, dim=16, reveal="aggregator"):
    x = ctx.rng.normal(size=dim)
    res = secure_sum(ctx, x, aggregator=ctx.parties[0], value_range=8.0, reveal=reveal, timeout=10)
    return {"total": res.total, "included": list(res.included)}


def _inputs(names, dim):
    return {p: party_rng(0, p).normal(size=dim) for p in names}


def test_float_sum_revealed_to_all(runtime):
    result = simulate(_float_main, parties=6, params={"reveal": "all"}, runtime=runtime, timeout_s=20)
    inputs = _inputs(result.parties, 16)
    expected = np.sum(list(inputs.values()), axis=0)
    for name, out in result.parties.items():
        assert out["included"] == list(result.parties), name
        np.testing.assert_allclose(out["total"], expected, atol=1e-9)


@pytest.mark.parametrize("after", [0, 1, 2, 3, 4])
def test_kills_at_every_stage_up_to_tolerance(runtime, after):
    # 10 parties: 9 clients, threshold 6, so 3 may die at any stage
    kill = {"p2": after, "p5": after, "p9": after}
    result = simulate(_float_main, parties=10, kill=kill, runtime=runtime, timeout_s=20)
    agg = result.parties["p0"]
    assert "error" not in agg, agg
    included = agg["included"]
    assert set(included) == (set(result.parties) - (set(kill) if after < 3 else set()))
    inputs = _inputs(included, 16)
    np.testing.assert_allclose(agg["total"], np.sum([inputs[p] for p in included], axis=0), atol=1e-9)
    for name in set(result.parties) - set(kill):
        assert "error" not in result.parties[name]


@pytest.mark.parametrize("after", [0, 1, 2, 3])
def test_beyond_tolerance_every_party_fails_clearly(runtime, after):
    kill = {f"p{i}": after for i in range(1, 5)}  # 4 of 9 clients
    result = simulate(_float_main, parties=10, kill=kill, runtime=runtime, timeout_s=20)
    assert set(result.errors()) == set(result.parties)
    for name in set(result.parties) - set(kill):
        assert "PartyDropped" in result.parties[name]["error"]
        assert "4 of 9 clients lost" in result.parties[name]["error"]


def test_aggregator_killed_everyone_fails(runtime):
    result = simulate(_float_main, parties=5, kill={"p0": 1}, runtime=runtime, timeout_s=20)
    for name in ("p1", "p2", "p3", "p4"):
        assert "aggregator p0 dropped" in result.parties[name]["error"]


def test_integers_sum_exactly_and_out_of_range_input_is_refused(runtime):
    def main(ctx):
        x = np.arange(5, dtype=np.int64) * (1 + ctx.parties.index(ctx.party))
        if ctx.party == "p3":
            x[0] = 2**62  # cannot fit: this party refuses before sending anything
        res = secure_sum(ctx, x, aggregator="p0", timeout=10)
        return {"total": res.total, "included": list(res.included)}

    result = simulate(main, parties=5, runtime=runtime, timeout_s=20)
    assert "exceeds the declared range" in result.parties["p3"]["error"]
    agg = result.parties["p0"]
    assert agg["included"] == ["p0", "p1", "p2", "p4"]
    np.testing.assert_array_equal(agg["total"], np.arange(5) * (1 + 2 + 3 + 5))
    assert agg["total"].dtype == np.int64


def test_duplicated_and_reordered_messages_change_nothing(runtime):
    plan = FaultPlan(duplicate=0.3, reorder=0.3, seed=7)
    result = simulate(_float_main, parties=6, faults=plan, runtime=runtime, timeout_s=20)
    inputs = _inputs(result.parties, 16)
    expected = np.sum(list(inputs.values()), axis=0)
    np.testing.assert_allclose(result.parties["p0"]["total"], expected, atol=1e-9)


def test_protocol_script_contract(runtime):
    result = simulate(SCRIPT, parties=8, params={"dim": 5}, kill={"p4": 2}, runtime=runtime, timeout_s=20)
    agg = result.parties["p0"]
    assert "p4" not in agg["included"] and len(agg["included"]) == 7
    expected = np.sum([result.parties[p]["input"] for p in agg["included"]], axis=0)
    np.testing.assert_allclose(agg["sum"], expected, atol=1e-9)


def test_late_party_is_left_out_and_told(runtime):
    plan = FaultPlan(delay={("p3", "p0"): 6.0})  # p3 is far later than the 2 s stage deadline

    def main(ctx):
        res = secure_sum(ctx, ctx.rng.normal(size=4), aggregator="p0", value_range=8.0, timeout=2.0)
        return {"total": res.total, "included": list(res.included)}

    result = simulate(main, parties=6, faults=plan, runtime=runtime, timeout_s=20)
    assert "left out" in result.parties["p3"]["error"]
    assert result.parties["p0"]["included"] == ["p0", "p1", "p2", "p4", "p5"]


def test_parties_with_different_parameters_are_left_out(runtime):
    def main(ctx):
        vr = 4.0 if ctx.party == "p2" else 8.0
        res = secure_sum(ctx, ctx.rng.normal(size=4), aggregator="p0", value_range=vr, timeout=5)
        return {"total": res.total, "included": list(res.included)}

    result = simulate(main, parties=5, runtime=runtime, timeout_s=20)
    assert "left out" in result.parties["p2"]["error"]
    expected = np.sum(list(_inputs(["p0", "p1", "p3", "p4"], 4).values()), axis=0)
    np.testing.assert_allclose(result.parties["p0"]["total"], expected, atol=1e-9)


def test_over_grpc_with_kills(runtime):
    """The same round over the mutual-TLS gRPC transport on loopback."""
    result = simulate(
        SCRIPT,
        parties=8,
        params={"dim": 5},
        kill={"p3": 2, "p5": 3},
        runtime=runtime,
        timeout_s=20,
        transport="grpc",
    )
    agg = result.parties["p0"]
    assert set(result.errors()) == {"p3", "p5"}
    assert agg["included"] == ["p0", "p1", "p2", "p4", "p5", "p6", "p7"]
    expected = np.sum([party_rng(0, p).normal(size=5) for p in agg["included"]], axis=0)
    np.testing.assert_allclose(agg["sum"], expected, atol=1e-9)


def test_round_stats_count_every_encoded_byte_once_at_each_end(runtime):
    def main(ctx):
        res = secure_sum(ctx, np.arange(32, dtype=np.float32), aggregator="p0", value_range=64.0, timeout=10)
        return {"sent": res.stats.bytes_sent, "received": res.stats.bytes_received}

    out = simulate(main, parties=4, runtime=runtime, timeout_s=20).parties
    clients = [out[p] for p in ("p1", "p2", "p3")]
    assert out["p0"]["received"] == sum(c["sent"] for c in clients)
    assert out["p0"]["sent"] == sum(c["received"] for c in clients)
    assert all(c["sent"] > 32 * 4 for c in clients)  # the masked input alone is 32 ring words
