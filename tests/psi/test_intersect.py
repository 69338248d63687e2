"""``fedcore.psi.intersect`` end to end through ``fedcore.sim.simulate`` (2 and 3 parties)."""

import random
from pathlib import Path

import pytest

from fedcore.errors import ConfigError
from fedcore.psi import intersect
from fedcore.runtime import make_runtime
from fedcore.sim import simulate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime("processes", workers=2)
    yield rt
    rt.close()


def run(runtime, sets: dict[str, list], **kwargs) -> dict:
    def main(ctx):
        return {"result": intersect(ctx, ctx.data("ids"), batch_items=64, **kwargs)}

    data = {p: {"ids": ids} for p, ids in sets.items()}
    result = simulate(main, names=list(sets), runtime=runtime, data=data)
    assert not result.errors(), result.errors()
    return {p: r["result"] for p, r in result.parties.items()}


def expected(sets: dict[str, list]) -> set:
    return set.intersection(*(set(s) for s in sets.values()))


def random_sets(rng: random.Random, names: list[str], size: int) -> dict[str, list]:
    pool = [f"u{i}" for i in range(size * 2)] + list(range(size))
    return {p: rng.sample(pool, rng.randint(0, size)) for p in names}


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "c"]])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_sets(runtime, names, seed) -> None:
    sets = random_sets(random.Random(seed), names, 300)
    for party, got in run(runtime, sets).items():
        assert set(got) == expected(sets), party
        assert len(got) == len(set(got))


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "c"]])
def test_duplicates_empty_disjoint_identical(runtime, names) -> None:
    base = [f"x{i}" for i in range(100)]
    cases = [
        {p: base[:60] + base[20:80] + ["x5"] * 3 for p in names},  # duplicates, identical
        {p: [] for p in names},  # all empty
        {p: ([] if i == 0 else base) for i, p in enumerate(names)},  # one empty
        {p: [f"{p}-{i}" for i in range(50)] for p in names},  # disjoint
        {p: list(base) for p in names},  # identical
    ]
    for sets in cases:
        for got in run(runtime, sets).values():
            assert sorted(got) == sorted(expected(sets))


def test_str_and_int_are_distinct_identifiers(runtime) -> None:
    got = run(runtime, {"a": [1, "2", 3], "b": ["1", 2, 3]})
    assert got == {"a": [3], "b": [3]}


def test_reveal_to_and_positions_two_parties(runtime) -> None:
    sets = {"a": ["k", "b", "c", "d", "b"], "b": ["d", "c", "z"]}
    got = run(runtime, sets, reveal_to=["b"], return_positions=True)
    assert got["a"] is None
    assert got["b"] == [1, 0]  # positions of "c", "d" in b's list, in canonical (sorted) order


def test_three_parties_reveal_to_a_subset_and_positions_align(runtime) -> None:
    sets = {"a": ["q", "w", "e", "r"], "b": ["r", "e", "x"], "c": ["e", "r", "y", "q"]}
    got = run(runtime, sets, reveal_to=["b", "c"], return_positions=True)
    assert got["a"] is None
    assert [sets["b"][i] for i in got["b"]] == [sets["c"][i] for i in got["c"]] == ["e", "r"]


def test_a_subset_of_parties(runtime) -> None:
    def main(ctx):
        if ctx.party == "c":
            return {"result": None}
        return {"result": intersect(ctx, ["1", ctx.party], parties=["a", "b"])}

    result = simulate(main, names=["a", "b", "c"], runtime=runtime)
    assert {p: r["result"] for p, r in result.parties.items()} == {"a": ["1"], "b": ["1"], "c": None}


def test_bad_arguments_are_refused(runtime) -> None:
    def main(ctx):
        out = {}
        for name, kwargs in {
            "unknown": {"parties": ["a", "zz"]},
            "alone": {"parties": ["a"]},
            "outsider": {"parties": ["b", "c"]},
            "reveal": {"reveal_to": ["c"], "parties": ["a", "b"]},
        }.items():
            try:
                intersect(ctx, ["x"], **kwargs)
            except ConfigError as exc:
                out[name] = str(exc)
        try:
            intersect(ctx, ["x", 1.5])
        except TypeError as exc:
            out["type"] = str(exc)
        return out

    got = simulate(main, names=["a", "b", "c"], runtime=runtime).parties["a"]
    assert set(got) == {"unknown", "alone", "outsider", "reveal", "type"}
    assert "not one of its parties" in got["outsider"] and "position 1" in got["type"]


def test_psi_align_script(runtime) -> None:
    result = simulate(
        ROOT / "protocols" / "psi_align.py",
        parties=3,
        params={"size": 300, "overlap": 37},
        runtime=runtime,
        seed=5,
    )
    outs = list(result.parties.values())
    assert all(o["ids_count"] == 300 and len(o["intersection"]) == 37 for o in outs), result.errors()
    assert outs[0]["intersection"] == outs[1]["intersection"] == outs[2]["intersection"]
    assert all(i.startswith("c-") for i in outs[0]["intersection"])


def test_a_party_that_dies_fails_the_others_cleanly(runtime) -> None:
    def main(ctx):
        return {"result": intersect(ctx, [f"x{i}" for i in range(500)], batch_items=50)}

    result = simulate(main, names=["a", "b"], runtime=runtime, kill={"b": 2}, timeout_s=30)
    assert "killed" in result.parties["b"]["error"]
    assert "PartyDropped" in result.parties["a"]["error"]


def test_a_dead_party_on_the_ring_fails_the_others_cleanly(runtime) -> None:
    def main(ctx):
        return {"result": intersect(ctx, [f"x{i}" for i in range(300)], batch_items=50)}

    result = simulate(main, names=["a", "b", "c"], runtime=runtime, kill={"b": 3}, timeout_s=30)
    assert "killed" in result.parties["b"]["error"]
    assert all("PartyDropped" in result.parties[p]["error"] for p in ("a", "c"))
