"""fedcore.crypto.kx: X25519 (RFC 7748 6.1) with HKDF-SHA256 (checked against an hmac-only HKDF)."""

import json
import pickle
from pathlib import Path

import pytest

from fedcore.crypto import kx
from fedcore.crypto.secret import ACCESS, Secret

KAT = json.loads((Path(__file__).parent / "vectors" / "secagg_kat.json").read_text())["x25519"]


def test_rfc7748_keys_and_hkdf_known_answer():
    alice = kx.KeyPair(Secret(bytes.fromhex(KAT["alice_private"])))
    bob = kx.KeyPair(Secret(bytes.fromhex(KAT["bob_private"])))
    assert alice.public.hex() == KAT["alice_public"] and bob.public.hex() == KAT["bob_public"]
    salt, info = bytes.fromhex(KAT["salt"]), bytes.fromhex(KAT["info"])
    ab = kx.agree(alice.private, bob.public, info=info, salt=salt)
    ba = kx.agree(bob.private, alice.public, info=info, salt=salt)
    assert ab == ba
    assert ab.reveal(ACCESS).hex() == KAT["hkdf_okm32"]


def test_purpose_and_session_separate_keys():
    a, b = kx.KeyPair.generate(), kx.KeyPair.generate()
    k1 = kx.agree(a.private, b.public, info=b"mask", salt=b"s")
    assert k1 != kx.agree(a.private, b.public, info=b"enc", salt=b"s")
    assert k1 != kx.agree(a.private, b.public, info=b"mask", salt=b"t")


def test_misuse_is_refused():
    a = kx.KeyPair.generate()
    with pytest.raises(ValueError, match="32 bytes"):
        kx.agree(a.private, b"short", info=b"x", salt=b"")
    with pytest.raises(ValueError, match="not acceptable"):
        kx.agree(a.private, bytes(32), info=b"x", salt=b"")  # low-order point
    with pytest.raises(ValueError, match="info"):
        kx.agree(a.private, a.public, info=b"", salt=b"")
    with pytest.raises(TypeError):
        kx.agree(a.private.reveal(ACCESS), a.public, info=b"x", salt=b"")
    for attempt in (lambda: pickle.dumps(a), lambda: bool(a), lambda: pickle.dumps(a.private)):
        with pytest.raises(TypeError):
            attempt()
    assert a.private.reveal(ACCESS).hex() not in repr(a) + repr(a.private)


def test_agree_many_equals_agree_one_by_one_and_refuses_bad_keys():
    ours = kx.KeyPair.generate()
    peers = [kx.KeyPair.generate().public for _ in range(5)]
    many = kx.agree_many(ours, peers, info=b"purpose", salt=b"salt")
    one_by_one = [kx.agree(ours, pk, info=b"purpose", salt=b"salt") for pk in peers]
    assert [s.reveal(ACCESS) for s in many] == [s.reveal(ACCESS) for s in one_by_one]
    with pytest.raises(ValueError, match="not acceptable"):
        kx.agree_many(ours, [peers[0], bytes(32)], info=b"purpose", salt=b"salt")  # a low-order point
    with pytest.raises(ValueError):
        kx.agree_many(ours, peers, info=b"", salt=b"salt")
