"""fedcore.crypto.shamir over GF(2^256 + 297): known answers, reconstruction, misuse."""

import itertools
import json
import pickle
from pathlib import Path

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcore.crypto import shamir
from fedcore.crypto.secret import ACCESS, Secret

KAT = json.loads((Path(__file__).parent / "vectors" / "secagg_kat.json").read_text())["shamir"]


def _value(share: shamir.Share) -> int:
    return int.from_bytes(share.to_bytes(ACCESS), "big")


def test_prime_is_prime_and_above_every_secret():
    assert gmpy2.is_prime(shamir.PRIME) and shamir.PRIME > 2**256


def test_known_answer_shares_and_every_subset_recovers():
    coefficient_bytes = iter(bytes.fromhex(c) for c in KAT["coefficient_bytes"])
    secret = Secret(bytes.fromhex(KAT["secret"]))
    shares = shamir.split(secret, KAT["threshold"], KAT["xs"], lambda n: next(coefficient_bytes))
    assert [s.to_bytes(ACCESS).hex() for s in shares] == KAT["ys"]
    for subset in itertools.combinations(shares, KAT["threshold"]):
        assert shamir.combine(subset, KAT["threshold"]) == secret


@settings(max_examples=30, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), n=st.integers(1, 9), data=st.data())
def test_any_threshold_subset_recovers(secret, n, data):
    t = data.draw(st.integers(1, n))
    shares = shamir.split(Secret(secret), t, list(range(1, n + 1)))
    subset = data.draw(st.permutations(shares))[:t]
    assert shamir.combine(subset, t).reveal(ACCESS) == secret


def test_too_few_repeated_or_inconsistent_shares_are_refused():
    secret = bytes(range(32))
    shares = shamir.split(Secret(secret), 3, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="need 3"):
        shamir.combine(shares[:2], 3)
    with pytest.raises(ValueError, match="repeated"):
        shamir.combine([shares[0], shares[0], shares[1]], 3)
    # the Lagrange weight of x=3 in {1, 2, 3} at zero is 1: shift its share so the result is 2^256 + 1
    shift = 2**256 + 1 - int.from_bytes(secret, "big")
    forged = [shares[0], shares[1], shamir.Share(3, (_value(shares[2]) + shift) % shamir.PRIME)]
    with pytest.raises(ValueError, match="inconsistent"):
        shamir.combine(forged, 3)
    with pytest.raises(ValueError):
        shamir.split(Secret.generate(), 5, [1, 2, 3])
    with pytest.raises(ValueError):
        shamir.split(Secret.generate(), 2, [1, 1, 2])
    with pytest.raises(TypeError):
        shamir.split(bytes(32), 2, [1, 2])  # type: ignore[arg-type]


def test_shares_hide_their_value():
    share = shamir.split(Secret.generate(), 2, [1, 2])[0]
    assert str(_value(share)) not in repr(share) and share.to_bytes(ACCESS).hex() not in repr(share)
    assert not hasattr(share, "y")  # the value is no attribute: it leaves only by to_bytes(ACCESS)
    for token in (None, object()):
        with pytest.raises(TypeError, match="ACCESS"):
            share.to_bytes(token)  # type: ignore[arg-type]
    for attempt in (lambda: pickle.dumps(share), lambda: bool(share)):
        with pytest.raises(TypeError):
            attempt()
