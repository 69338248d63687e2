"""Key objects for one modulus share their encryption state; decryption on a runtime equals inline."""

import numpy as np
import pytest

from fedcore import wire
from fedcore.crypto import paillier
from fedcore.crypto.cache import Cache
from fedcore.he import DecryptionError, PublicKey, generate_keypair
from fedcore.he import _keys as keys_module
from fedcore.runtime import make_runtime


@pytest.fixture(scope="module")
def wire_keys():
    return generate_keypair(1024)  # the smallest key the wire accepts


def test_decoded_keys_share_one_djn_base_and_one_table(wire_keys):
    pk, sk = wire_keys
    first, second = wire.decode(wire.encode(pk)), wire.decode(wire.encode(pk))
    assert first is not second and first == second == pk
    assert first._state is second._state is pk._state
    assert first.djn_base() == second.djn_base() == pk.djn_base()
    x = np.arange(-25, 25) / 4  # exact in 20 fractional bits
    a, b = first.encrypt(x), second.encrypt(x)
    tables = [key for key in paillier.ENCRYPTORS if key[0] == pk.n]
    assert tables == [(pk.n, pk.djn_base())]  # one table for the modulus, not one per object
    assert set(a.ciphertexts).isdisjoint(b.ciphertexts)  # fresh randomness all the same
    assert np.array_equal(sk.decrypt(a + b), 2 * x)


def test_precomputed_pool_is_shared_and_each_randomizer_used_once(wire_keys):
    pk, sk = wire_keys
    decoded = wire.decode(wire.encode(pk))
    pk.take_randomizers(10**6)  # start from an empty pool
    pk.precompute(4)
    assert decoded.precomputed == 4
    taken = decoded.take_randomizers(3)
    assert len(taken) == 3 and pk.precomputed == 1
    enc = pk.encrypt(np.arange(3.0), packed=False)  # one from the pool, two fresh
    assert pk.precomputed == 0 and decoded.precomputed == 0
    assert not set(enc.ciphertexts) & {int(r) for r in taken}
    assert np.array_equal(sk.decrypt(enc), np.arange(3.0))


def test_state_registry_is_bounded_and_live_keys_keep_their_base(monkeypatch):
    monkeypatch.setattr(keys_module, "STATES", Cache("encryption states", 2))
    pairs = [generate_keypair(512) for _ in range(3)]
    oldest = pairs[0][0]
    base = oldest.djn_base()
    assert len(keys_module.STATES) == 2 and oldest.n not in keys_module.STATES
    assert oldest.djn_base() == base  # the live object still has its state
    again = PublicKey(oldest.n)  # evicted: a new object gets a new state (still correct)
    assert again._state is not oldest._state
    assert np.array_equal(pairs[0][1].decrypt(again.encrypt(np.arange(5))), np.arange(5))


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_decrypt_on_a_runtime_equals_inline(keys, backend):
    pk, sk = keys
    rng = np.random.default_rng(7)
    floats = rng.normal(size=3000) * 100
    ints = rng.integers(-(2**20), 2**20, size=777)
    with make_runtime(backend, workers=2) as runtime:
        vectors = [
            pk.encrypt(floats, runtime=runtime) + pk.encrypt(-floats / 3, runtime=runtime),
            pk.encrypt(ints, runtime=runtime) * 5,
            pk.encrypt(floats[:300], packed=False, runtime=runtime) * 0.25,
        ]
        for enc in vectors:
            inline = sk.decrypt(enc.with_runtime(None))
            parallel = sk.decrypt(enc, runtime=runtime)
            assert parallel.dtype == inline.dtype and np.array_equal(parallel, inline)
        assert np.array_equal(sk.decrypt(vectors[1], runtime=runtime), ints * 5)
        corrupted = vectors[0].with_runtime(runtime)
        corrupted._cts[len(corrupted._cts) // 2] += 1
        with pytest.raises(DecryptionError):
            sk.decrypt(corrupted)
