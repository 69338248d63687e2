"""Canonical identifier encoding for PSI."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedcore.psi import decode_id, encode_id
from fedcore.psi._ids import unique_encoded


def test_type_prefix_separates_str_and_int() -> None:
    assert encode_id("1") != encode_id(1)
    assert encode_id(np.int64(7)) == encode_id(7)
    assert encode_id(-5) == b"i-5"


@pytest.mark.parametrize("bad", [1.0, None, b"1", True, np.bool_(False), (1,)])
def test_other_types_are_refused(bad) -> None:
    with pytest.raises(TypeError, match="str or int"):
        encode_id(bad)


def test_refusal_names_the_position() -> None:
    with pytest.raises(TypeError, match="position 2"):
        unique_encoded(["a", 1, 2.5])


def test_duplicates_keep_the_first_position() -> None:
    encoded, first = unique_encoded(["a", "b", "a", 1, "b"])
    assert encoded == [b"sa", b"sb", b"i1"]
    assert first == {b"sa": 0, b"sb": 1, b"i1": 3}


@given(st.one_of(st.text(), st.integers()))
def test_round_trip(value) -> None:
    decoded = decode_id(encode_id(value))
    assert decoded == value and type(decoded) is type(value)


@pytest.mark.parametrize("bad", [b"", b"x1", b"i", b"i01", b"i+1"])
def test_non_canonical_encodings_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        decode_id(bad)
