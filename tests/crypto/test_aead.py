"""fedcore.crypto.aead: ChaCha20-Poly1305 bound to (job, round, sender, recipient, stage)."""

import dataclasses
import json
from pathlib import Path

import pytest

from fedcore.crypto import aead
from fedcore.crypto.secret import Secret
from fedcore.errors import AuthError

KAT = json.loads((Path(__file__).parent / "vectors" / "secagg_kat.json").read_text())["aead"]
BINDING = aead.Binding(*KAT["binding"])
KEY = Secret(bytes.fromhex(KAT["key"]))


def test_known_answer_opens():
    assert aead.decrypt(KEY, bytes.fromhex(KAT["sealed"]), BINDING) == bytes.fromhex(KAT["plaintext"])


def test_round_trip_with_fresh_nonces():
    a, b = aead.encrypt(KEY, b"hello", BINDING), aead.encrypt(KEY, b"hello", BINDING)
    assert a != b and a[:12] != b[:12]
    assert aead.decrypt(KEY, a, BINDING) == b"hello"


@pytest.mark.parametrize("field", ["job", "round", "sender", "recipient", "stage"])
def test_replay_into_another_place_fails(field):
    sealed = aead.encrypt(KEY, b"share", BINDING)
    moved = dataclasses.replace(BINDING, **{field: "elsewhere"})
    with pytest.raises(aead.DecryptionFailed, match=r"^decryption failed$"):
        aead.decrypt(KEY, sealed, moved)


def test_tampering_truncation_and_wrong_key_fail_the_same_way():
    sealed = bytearray(aead.encrypt(KEY, b"share", BINDING))
    sealed[-1] ^= 1
    attempts = [
        (KEY, bytes(sealed)),
        (KEY, bytes(sealed[:20])),
        (KEY, b""),
        (Secret(bytes(32)), aead.encrypt(KEY, b"share", BINDING)),
    ]
    for key, blob in attempts:
        with pytest.raises(AuthError) as caught:
            aead.decrypt(key, blob, BINDING)
        assert str(caught.value) == "decryption failed"


def test_misuse_is_refused_at_the_boundary():
    with pytest.raises(TypeError):
        aead.encrypt(bytes(32), b"x", BINDING)  # raw key bytes
    with pytest.raises(TypeError):
        aead.encrypt(KEY, "text", BINDING)  # str, not bytes
    with pytest.raises(TypeError):
        aead.encrypt(KEY, b"x", ("job", "round"))  # no Binding
    with pytest.raises(TypeError):
        aead.Binding("job", "round", "a", "b", 3)
    with pytest.raises(TypeError):
        aead.encrypt(KEY, b"x", BINDING, nonce=bytes(12))  # no caller nonce
