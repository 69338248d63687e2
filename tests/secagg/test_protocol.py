"""SecAgg+ sessions driven in memory: correctness, dropouts at every stage, failure below threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcore.secagg import Stage
from fedcore.secagg.messages import Outcome, Survivors, UnmaskShares
from fedcore.secagg.protocol import default_threshold, sparse_degree

from .conftest import AGG, make_round, plain_sum, run_round, total


def test_no_dropouts_sum_is_exact():
    rnd = run_round(make_round(6, 50))
    assert rnd.agg.stage is Stage.DONE
    assert rnd.agg.included == (AGG, *rnd.setup.clients)
    np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.inputs))
    assert rnd.finished == set(rnd.setup.clients)


@pytest.mark.parametrize("after", [0, 1, 2, 3])
def test_dropout_at_each_stage(after):
    """after=0: before anything; 1: after keys; 2: after shares; 3: after the masked input."""
    rnd = run_round(make_round(7, 20, seed=after), sends={"c002": after, "c005": after})
    assert rnd.agg.stage is Stage.DONE
    gone = {"c002", "c005"}
    expected = set(rnd.inputs) if after == 3 else set(rnd.inputs) - gone
    assert set(rnd.agg.included) == expected
    np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.agg.included))


def test_mixed_dropouts_up_to_tolerance():
    # 9 clients, threshold ceil(18/3) = 6: three may go, one at each stage
    rnd = run_round(make_round(9, 30), sends={"c000": 1, "c004": 2, "c008": 3})
    assert rnd.setup.threshold == 6
    assert set(rnd.agg.included) == set(rnd.inputs) - {"c000", "c004"}
    np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.agg.included))


@pytest.mark.parametrize("after", [0, 1, 2, 3])
def test_below_threshold_fails_everywhere_and_reveals_nothing(after):
    rnd = run_round(make_round(6, 10), sends={f"c00{i}": after for i in range(3)})  # t = 4, 3 of 6 left
    assert rnd.agg.stage is Stage.FAILED and rnd.agg.total is None
    assert rnd.agg.lost == 3
    survivors = {f"c00{i}" for i in range(3, 6)}
    assert set(rnd.errors) == survivors
    assert all(e.lost == 3 for e in rnd.errors.values())
    assert not any(isinstance(m, Outcome) for _, m in rnd.downstream)


def test_sparse_graph_round_with_dropouts():
    rnd = make_round(60, 16, graph="sparse")
    k = sparse_degree(60)
    assert all(len(n) == k for n in rnd.setup.neighbours.values())
    assert rnd.setup.threshold == default_threshold(k + 1)
    run_round(rnd, sends={"c010": 1, "c020": 2, "c030": 3}, shuffle_seed=1)
    assert set(rnd.agg.included) == set(rnd.inputs) - {"c010", "c020"}
    np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.agg.included))


def test_each_client_is_told_only_which_of_its_share_holders_survived():
    rnd = make_round(60, 8, graph="sparse")
    run_round(rnd, sends={"c010": 2, "c020": 2})  # both drop before their masked input
    told = {dst: m.survivors for dst, m in rnd.downstream if isinstance(m, Survivors)}
    assert set(told) == set(rnd.agg.included) - {AGG}
    for client, survivors in told.items():
        holders = {client, *rnd.setup.neighbours[client]}
        assert set(survivors) == holders - {"c010", "c020"}  # O(k) names, not all 59 clients
        assert list(survivors) == sorted(survivors, key=rnd.setup.index)
    np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.agg.included))


def test_sparse_graph_is_symmetric_and_agreed_from_the_public_seed():
    a, b = make_round(80, 1, graph="sparse", seed=3), make_round(80, 1, graph="sparse", seed=3)
    assert a.setup.neighbours == b.setup.neighbours
    assert a.setup.digest() == b.setup.digest()
    for u, nbrs in a.setup.neighbours.items():
        assert u not in nbrs and all(u in a.setup.neighbours[v] for v in nbrs)
    assert make_round(80, 1, graph="sparse", seed=4).setup.neighbours != a.setup.neighbours


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=8),
    dim=st.integers(min_value=1, max_value=12),
    deaths=st.lists(st.integers(min_value=0, max_value=4), min_size=8, max_size=8),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_secure_sum_equals_plain_sum_or_fails_cleanly(n, dim, deaths, seed):
    rnd = make_round(n, dim, seed=seed)
    sends = {c: d for c, d in zip(rnd.setup.clients, deaths, strict=False) if d < 4}
    run_round(rnd, sends=sends, shuffle_seed=seed)
    if rnd.agg.stage is Stage.DONE:
        np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.agg.included))
        assert len(rnd.agg.included) - 1 >= rnd.setup.threshold
        assert all(sends.get(c, 99) >= 3 for c in rnd.agg.included if c != AGG)
    else:
        assert rnd.agg.stage is Stage.FAILED and rnd.agg.total is None
        alive = set(rnd.setup.clients) - rnd.dead
        assert set(rnd.errors) == set(alive)  # every live client ends with PartyDropped
        assert not any(isinstance(m, Outcome) for _, m in rnd.downstream)


def test_double_masking_rule_in_every_unmask_message():
    rnd = run_round(make_round(8, 5), sends={"c001": 2, "c006": 2})
    dropped = {"c001", "c006"}
    unmasks = [m for _, m in rnd.upstream if isinstance(m, UnmaskShares)]
    assert unmasks
    for m in unmasks:
        assert not set(m.seed_shares) & set(m.key_shares)
        assert not set(m.seed_shares) & dropped
        assert set(m.key_shares) <= dropped


@pytest.mark.parametrize(("clients", "k", "t"), [(21, 2, 2), (21, 3, 3), (20, 3, 3), (20, 4, 4)])
def test_neighbours_k_builds_a_symmetric_graph_of_degree_k(clients, k, t):
    setup = make_round(clients, 1, neighbours=k).setup
    degrees = sorted(len(n) for n in setup.neighbours.values())
    # odd K on an odd number of clients: Harary's H(K, n) gives one client K + 1 neighbours
    assert degrees == [k] * clients if k % 2 == 0 or clients % 2 == 0 else [k] * (clients - 1) + [k + 1]
    for u, nbrs in setup.neighbours.items():
        assert u not in nbrs and all(u in setup.neighbours[v] for v in nbrs)
    assert setup.threshold == t and all(t > (d + 1) / 2 for d in degrees)


def test_neighbours_k_round_survives_one_dropout_per_neighbourhood():
    rnd = make_round(21, 9, neighbours=3, seed=5)
    run_round(rnd, sends={"c004": 2, "c015": 3}, shuffle_seed=2)
    assert rnd.agg.stage is Stage.DONE
    assert set(rnd.agg.included) == set(rnd.inputs) - {"c004"}
    np.testing.assert_array_equal(total(rnd), plain_sum(rnd, rnd.agg.included))


def test_neighbours_k_at_or_above_n_minus_one_is_the_complete_graph_and_bad_k_is_refused():
    from fedcore.errors import ConfigError

    complete = make_round(6, 1, graph="complete").setup.neighbours
    assert make_round(6, 1, neighbours=9).setup.neighbours == complete
    with pytest.raises(ConfigError, match="at least 2"):
        make_round(6, 1, neighbours=1)
    with pytest.raises(ConfigError, match="complete"):
        make_round(9, 1, neighbours=2, graph="complete")
    with pytest.raises(ConfigError, match="threshold"):
        make_round(21, 1, neighbours=3, threshold=2)  # 2 of 5 holders for the K + 1 client: no majority
