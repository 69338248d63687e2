"""Property tests: encrypted arithmetic equals plain arithmetic; hostile bytes fail cleanly."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcore import wire
from fedcore.errors import DecodeError
from fedcore.he import PACKED, DecryptionError, EncryptedVector

FLOATS = st.floats(-PACKED.max_abs / 4, PACKED.max_abs / 4, allow_nan=False)
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.data(), packed=st.booleans())
def test_sum_of_parties_equals_plain_sum(small_keys, data, packed):
    pk, sk = small_keys
    length = data.draw(st.integers(0, 30))
    parties = data.draw(st.integers(1, 4))
    vectors = [
        np.array(data.draw(st.lists(FLOATS, min_size=length, max_size=length))) for _ in range(parties)
    ]
    total = pk.encrypt(vectors[0], packed=packed)
    for vector in vectors[1:]:
        total = total + pk.encrypt(vector, packed=packed)
    plain = np.sum(vectors, axis=0)
    assert np.max(np.abs(sk.decrypt(total) - plain), initial=0) <= parties * 2.0 ** -(PACKED.frac_bits + 1)


@SETTINGS
@given(data=st.data())
def test_integer_linear_combinations_are_exact(small_keys, data):
    pk, sk = small_keys
    ints = st.integers(-(2**20), 2**20)
    a = np.array(data.draw(st.lists(ints, min_size=5, max_size=5)), dtype=np.int64)
    b = np.array(data.draw(st.lists(ints, min_size=5, max_size=5)), dtype=np.int64)
    k = data.draw(st.integers(-300, 300))
    for packed in (True, False):
        out = sk.decrypt(pk.encrypt(a, packed=packed) * k + pk.encrypt(b, packed=packed) - b)
        assert np.array_equal(out, a * k)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, 10**6), byte=st.integers(0, 255))
def test_mutated_vector_bytes_fail_cleanly(keys, position, byte):
    pk, sk = keys
    data = bytearray(wire.encode(pk.encrypt(np.arange(30.0))))
    data[position % len(data)] = byte
    try:
        out = wire.decode(bytes(data))
    except DecodeError:
        return
    if isinstance(out, EncryptedVector) and out.public_key == pk:
        try:
            values = sk.decrypt(out)
        except DecryptionError:
            return
        assert values.shape == (out.length,)
