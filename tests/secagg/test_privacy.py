"""The aggregator's view: masked inputs look uniform and it never holds an unmasked client input."""

from __future__ import annotations

import numpy as np

from fedcore.crypto import fixedpoint
from fedcore.secagg.messages import MaskedInput

from .conftest import make_round, run_round

# chi-square critical values at p = 1e-4 (scipy.stats.chi2.ppf(1 - 1e-4, df)):
CHI2_BYTES_255 = 347.7  # 256 byte values
CHI2_NIBBLE_WORDS_15 = 42.3  # 16 values of a word's top 4 bits


def _masked_vectors(rnd):
    return {c: m.vector for c, m in rnd.upstream if isinstance(m, MaskedInput)}


def _chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def test_masked_inputs_are_uniform_even_for_constant_inputs():
    dim = 8192
    inputs = {p: np.full(dim, 7, dtype=np.int64) for p in ["agg", *(f"c{i:03d}" for i in range(5))]}
    rnd = run_round(make_round(5, dim, seed=11, inputs=inputs), sends={"c004": 3})
    vectors = _masked_vectors(rnd)
    assert len(vectors) == 5
    for vector in vectors.values():
        byte_counts = np.bincount(vector.view(np.uint8), minlength=256)
        assert _chi_square(byte_counts) < CHI2_BYTES_255
        top = np.bincount((vector >> 28).astype(np.int64), minlength=16)
        assert _chi_square(top) < CHI2_NIBBLE_WORDS_15
    np.testing.assert_array_equal(fixedpoint.decode(rnd.agg.total, rnd.setup.encoding), np.full(dim, 6 * 7))


def test_aggregator_never_holds_an_unmasked_input():
    dim = 4096
    rnd = run_round(make_round(6, dim, seed=5), sends={"c001": 2, "c003": 3})
    enc = rnd.setup.encoding
    for client, vector in _masked_vectors(rnd).items():
        clear = fixedpoint.encode(rnd.inputs[client], enc)
        # a masked word equals the clear word with probability 2^-32: expect none of 4096
        assert np.count_nonzero(vector == clear) <= 1
        for other in rnd.setup.clients:  # nor any other client's input
            assert np.count_nonzero(vector == fixedpoint.encode(rnd.inputs[other], enc)) <= 1
    # it keeps no masked vector either: only its own input and the running (masked, then final) sum
    arrays = [v for v in vars(rnd.agg).values() if isinstance(v, np.ndarray)]
    assert {id(v) for v in arrays} == {id(rnd.agg._own), id(rnd.agg.total)}
    assert not any(isinstance(m, MaskedInput) for m in rnd.agg._received.values())


def test_a_client_forgets_its_clear_input_once_masked():
    rnd = run_round(make_round(3, 64, seed=2))
    for client in rnd.clients.values():
        assert client._words.size == 0
