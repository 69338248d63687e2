"""``simulate(..., transport="grpc")``: scripts over real mTLS nodes, with a party killed mid-job."""

from __future__ import annotations

import numpy as np

from fedcore.sim import simulate


def two_step(ctx, dim: int = 4) -> dict:  # type: ignore[no-untyped-def]
    if ctx.party == "p0":
        first = ctx.gather("a", timeout=20)
        second = ctx.gather("b", timeout=20)
        return {"sum": sum(first.values()) + sum(second.values())}
    ctx.send("p0", "a", np.ones(dim))
    ctx.send("p0", "b", np.ones(dim))
    return {}


def test_script_runs_over_grpc() -> None:
    result = simulate(two_step, parties=3, transport="grpc", runtime=_inline())
    assert result.errors() == {}
    np.testing.assert_array_equal(result.parties["p0"]["sum"], np.full(4, 4.0))


def test_killed_party_is_detected_by_the_others() -> None:
    result = simulate(two_step, parties=3, transport="grpc", kill={"p1": 1}, runtime=_inline())
    errors = result.errors()
    assert "killed" in errors["p1"]
    assert "PartyDropped" in errors["p0"] and "p1" in errors["p0"]
    assert "p2" not in errors


def _inline():  # type: ignore[no-untyped-def]
    from fedcore.runtime import make_runtime

    return make_runtime("inline")
