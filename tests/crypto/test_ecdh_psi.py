"""X25519 blinding for PSI: RFC 7748 known answers, commutativity, batches and misuse."""

import os
import pickle

import pytest

from fedcore.crypto.ecdh_psi import (
    POINT_BYTES,
    BlindingKey,
    blind_batch,
    hash_and_blind_batch,
    hash_to_u,
    x25519,
)
from fedcore.crypto.secret import ACCESS

# RFC 7748, section 5.2 ("Test Vectors"), the two single-multiplication vectors.
RFC7748_VECTORS = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]


@pytest.mark.parametrize(("scalar", "u", "expected"), RFC7748_VECTORS)
def test_rfc7748_vectors(scalar: str, u: str, expected: str) -> None:
    assert x25519(bytes.fromhex(scalar), bytes.fromhex(u)).hex() == expected


def test_hash_to_u_is_deterministic_and_clears_top_bit() -> None:
    values = [hash_to_u(b"s" + str(i).encode()) for i in range(200)]
    assert values == [hash_to_u(b"s" + str(i).encode()) for i in range(200)]
    assert all(len(v) == POINT_BYTES and v[31] & 0x80 == 0 for v in values)
    assert len(set(values)) == 200


def test_blinding_commutes_on_curve_and_twist() -> None:
    # About half of hashed u-coordinates lie on the twist; 64 items cover both with certainty ~1-2^-63.
    a, b = os.urandom(32), os.urandom(32)
    for i in range(64):
        u = hash_to_u(b"i" + str(i).encode())
        assert x25519(a, x25519(b, u)) == x25519(b, x25519(a, u))


def test_batches_equal_single_operations() -> None:
    a, b = os.urandom(32), os.urandom(32)
    items = [b"s" + os.urandom(8) for _ in range(20)]
    once = hash_and_blind_batch(a, items)
    assert once == b"".join(x25519(a, hash_to_u(i)) for i in items)
    assert blind_batch(b, once) == b"".join(x25519(b, x25519(a, hash_to_u(i))) for i in items)
    assert hash_and_blind_batch(a, []) == b"" and blind_batch(a, b"") == b""


def test_different_keys_give_unrelated_values() -> None:
    items = [b"s1", b"s2"]
    assert hash_and_blind_batch(os.urandom(32), items) != hash_and_blind_batch(os.urandom(32), items)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        blind_batch(os.urandom(32), b"\x01" * 33)
    with pytest.raises(ValueError, match="32 bytes"):
        blind_batch(b"short", b"")
    with pytest.raises(ValueError, match="low order"):
        blind_batch(os.urandom(32), bytes(32))  # u = 0 has order 1 or 2


def test_blinding_key_guards_its_secret() -> None:
    key = BlindingKey.generate()
    with pytest.raises(TypeError, match="ACCESS"):
        key.scalar_for_local_worker()
    scalar = key.scalar_for_local_worker(ACCESS)
    assert scalar.hex() not in repr(key) and "secret" in repr(key)
    with pytest.raises(TypeError):
        bool(key)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(key)
    items = [b"s-a", b"s-b"]
    assert key.hash_and_blind(items) == hash_and_blind_batch(scalar, items)
    fixed = BlindingKey.generate(lambda n: b"\x07" * n)
    assert fixed.scalar_for_local_worker(ACCESS) == b"\x07" * 32


# Golden values of this implementation (fedcore PSI v1: SHA-256 over DOMAIN || typed encoding,
# top bit cleared). They pin the wire format: parties on different versions must agree, so a
# change here must be deliberate (and bump DOMAIN).
GOLDEN_HASH_TO_U = [
    (b"salice", "d5849e81ecd5754281cf51a587d404b04e0a60a4289f75dba7b01a567895bb0d"),
    (b"i1", "0ec52615bcc7318fd3e18e1fa00a7bc5dac4966f48152d5813654209b3e57b07"),
    (b"s1", "044ff4b45dfaa6a59e3b0b5c985366d9d7efa28308f43053b194d50d2daad039"),
    (b"i-7", "4d4d7009de0e61d9f2ddd180e5bee3c01bfa00af1fbc8844f252f0c70a68f365"),
]


@pytest.mark.parametrize(("item", "expected"), GOLDEN_HASH_TO_U)
def test_hash_to_u_golden(item: bytes, expected: str) -> None:
    assert hash_to_u(item).hex() == expected


def test_blinding_golden() -> None:
    u = bytes.fromhex(GOLDEN_HASH_TO_U[0][1])
    expected = "5aea851e72a25ebdb5768f10296db978ef369c2803868e8b6cf395188d807125"
    assert x25519(bytes(range(32)), u).hex() == expected
