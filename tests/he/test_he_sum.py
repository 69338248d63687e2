"""protocols/he_sum.py: the decrypted encrypted sum equals the plain sum."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import fedcore.he
from fedcore.errors import ProtocolError
from fedcore.sim import simulate

SCRIPT = Path(__file__).resolve().parents[2] / "protocols" / "he_sum.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("he_sum_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_parties_sum_equals_plain_sum():
    result = simulate(str(SCRIPT), parties=3, params={"dim": 1000}, timeout_s=120)
    assert not result.errors(), result.errors()
    parties = result.parties
    plain = sum(parties[name]["input"] for name in ("p0", "p1", "p2"))
    assert set(parties["p0"]) == {"input", "sum"} and set(parties["p1"]) == {"input"}
    assert np.max(np.abs(parties["p0"]["sum"] - plain)) <= 3 * 2.0**-21


@pytest.mark.parametrize("count", [1, 2])
def test_one_and_two_parties_unpacked(count):
    result = simulate(str(SCRIPT), parties=count, params={"dim": 5, "key_bits": 1024, "packed": False})
    assert not result.errors(), result.errors()
    plain = sum(r["input"] for r in result.parties.values())
    assert np.max(np.abs(result.parties["p0"]["sum"] - plain)) <= count * 2.0**-33


def test_received_values_are_checked(keys, other_keys):
    script = _load_script()
    pk = keys[0]
    with pytest.raises(ProtocolError, match="expected a 2048-bit key"):
        script.checked_key(pk, 2048, "p0")
    with pytest.raises(ProtocolError, match="expected a PublicKey"):
        script.checked_key("nope", 1024, "p0")
    with pytest.raises(ProtocolError, match="under key"):
        script.checked_vector(other_keys[0].encrypt(np.ones(3)), pk, 3, "p1", script.TAG_VECTOR)
    with pytest.raises(ProtocolError, match="expected 4 values"):
        script.checked_vector(pk.encrypt(np.ones(3)), pk, 4, "p1", script.TAG_VECTOR)


def test_public_surface_is_pinned():
    assert sorted(fedcore.he.__all__) == sorted(
        [
            "PACKED",
            "PACKED_INT",
            "UNPACKED",
            "UNPACKED_INT",
            "WIRE_MIN_KEY_BITS",
            "DecryptionError",
            "EncodingError",
            "EncryptedVector",
            "ExportedPrivateKey",
            "FixedPoint",
            "HEError",
            "HeadroomError",
            "KeyMismatchError",
            "PackedOperationError",
            "PrivateKey",
            "PublicKey",
            "from_phe_numbers",
            "generate_keypair",
            "to_phe_numbers",
        ]
    )
