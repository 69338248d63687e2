"""fedcore.crypto.prg: AES-256-CTR mask expansion (known answers from FIPS-197 and SP 800-38A)."""

import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedcore.crypto import prg
from fedcore.crypto.secret import Secret

KAT = json.loads((Path(__file__).parent / "vectors" / "secagg_kat.json").read_text())


def test_the_cipher_matches_the_standards():
    c3 = KAT["aes256"]["fips197_c3"]
    ecb = Cipher(algorithms.AES(bytes.fromhex(c3["key"])), modes.ECB()).encryptor()
    assert ecb.update(bytes.fromhex(c3["plaintext"])).hex() == c3["ciphertext"]
    f55 = KAT["aes256"]["sp800_38a_f55"]
    ctr = Cipher(algorithms.AES(bytes.fromhex(f55["key"])), modes.CTR(bytes.fromhex(f55["counter"])))
    assert ctr.encryptor().update(bytes.fromhex(f55["plaintext"])).hex() == f55["ciphertext"]


@pytest.mark.parametrize("bits", [32, 64])
def test_mask_known_answer(bits):
    seed = Secret(bytes.fromhex(KAT["mask"]["key"]))
    stream = bytes.fromhex(KAT["mask"]["keystream"])
    expected = np.frombuffer(stream, dtype=prg.word_dtype(bits))
    np.testing.assert_array_equal(prg.expand(seed, expected.size, bits), expected)
    assert prg.expand(seed, 3, bits).tolist() == expected[:3].tolist()  # prefix-stable


def test_add_then_subtract_is_identity_with_wraparound():
    seeds = [Secret.generate() for _ in range(3)]
    exp = prg.Expander(1001, 32)
    acc = np.full(1001, 2**32 - 1, dtype=np.uint32)
    for s in seeds:
        exp.add(acc, s)
    for s in reversed(seeds):
        exp.subtract(acc, s)
    assert np.all(acc == 2**32 - 1)
    assert exp.bytes_expanded == 6 * 1001 * 4


def test_misuse_is_refused():
    with pytest.raises(TypeError):
        prg.Expander(4, 32).expand(bytes(32))  # raw bytes, not a Secret
    with pytest.raises(ValueError):
        prg.Expander(4, 16)
    with pytest.raises(ValueError):
        prg.Expander(4, 32).add(np.zeros(4, np.uint64), Secret.generate())
    assert prg.keystream_seconds(1 << 16, 1 << 12) >= 0.0


@pytest.mark.parametrize("bits", [32, 64])
def test_streamed_apply_equals_whole_vector_masks(bits):
    count = 3 * (prg.CHUNK_BYTES // (bits // 8)) + 17  # several chunks and a ragged tail
    masks = [(Secret.generate(), sign) for sign in (1, -1, 1, 1, -1)]
    expected = np.arange(count, dtype=prg.word_dtype(bits))
    got = expected.copy()
    one = prg.Expander(count, bits)
    for seed, sign in masks:
        (one.add if sign > 0 else one.subtract)(expected, seed)
    streamed = prg.Expander(count, bits)
    streamed.apply(got, masks)
    np.testing.assert_array_equal(got, expected)
    assert streamed.bytes_expanded == one.bytes_expanded
    with pytest.raises(ValueError, match="sign"):
        streamed.apply(got, [(Secret.generate(), 2)])
