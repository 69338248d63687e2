"""One value of every registered wire type, by wire name (shared by the wire tests).

A new registered type needs an entry here: ``test_registry`` fails until it has one.
The values are deterministic except the encrypted ones (Paillier encryption is random),
which the golden file pins by decode-then-encode instead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from fedcore.crypto.secret import ACCESS

_ENCRYPTED = ("HostScore", "Residual", "FinalResidual", "HostGradient", "MaskedTerm", "PheVector")
RANDOMIZED = {"fedcore.he.EncryptedVector", *(f"fedcore.vertical.{name}" for name in _ENCRYPTED)}
REFUSED = {"fedcore.he.PrivateKey"}  # never encoded: the codec refuses it both ways


@cache
def _keys() -> Any:
    """A fixed 1024-bit key pair (primes after fixed points), so key encodings are pinned too."""
    import gmpy2

    from fedcore.he import PrivateKey, PublicKey

    p, q = (int(gmpy2.next_prime(3 << 510 | seed)) for seed in (12345, 67890))
    public = PublicKey(p * q)
    return public, PrivateKey(public, p, q)


def _he_vector() -> Any:
    return _keys()[0].encrypt(np.array([1.5, -2.0]), packed=False)


def _phe_vector() -> Any:
    from fedcore.bench._phe_baseline import PhePublicKey

    return PhePublicKey(_keys()[0].to_phe()).encrypt(np.array([0.25, 3.0]))


def _points(count: int) -> bytes:
    from fedcore.crypto.ecdh_psi import POINT_BYTES

    return bytes([7]) * (count * POINT_BYTES)


def _psi() -> dict[str, Callable[[], Any]]:
    from fedcore.psi._driver import Revealed
    from fedcore.psi._protocol import Blinded, Reblinded
    from fedcore.psi._ring import Common, Hop, Tags

    return {
        "fedcore.psi.Blinded": lambda: Blinded(0, 3, _points(2)),
        "fedcore.psi.Reblinded": lambda: Reblinded(1, _points(1)),
        "fedcore.psi.Hop": lambda: Hop("bob", 2, 5, _points(2)),
        "fedcore.psi.Tags": lambda: Tags("carol", 0, 1, _points(1)),
        "fedcore.psi.Common": lambda: Common(_points(3)),
        "fedcore.psi.Revealed": lambda: Revealed((b"a", b"bc")),
    }


def _secagg() -> dict[str, Callable[[], Any]]:
    from fedcore.secagg import messages as m

    k1, k2, share = b"\x01" * 32, b"\x02" * 32, b"\x03" * 33
    return {
        "fedcore.secagg.Advertise": lambda: m.Advertise("r1", k1, k2, b"\x09" * 32),
        "fedcore.secagg.PeerKeys": lambda: m.PeerKeys("r1", {"bob": (k1, k2)}),
        "fedcore.secagg.SealedShares": lambda: m.SealedShares("r1", {"bob": b"sealed"}),
        "fedcore.secagg.ForwardedShares": lambda: m.ForwardedShares("r1", {"alice": b"fwd"}),
        "fedcore.secagg.MaskedInput": lambda: m.MaskedInput("r1", np.arange(4, dtype="<u4")),
        "fedcore.secagg.Survivors": lambda: m.Survivors("r1", ("alice", "bob")),
        "fedcore.secagg.UnmaskShares": lambda: m.UnmaskShares("r1", {"alice": share}, {"bob": share}),
        "fedcore.secagg.Outcome": lambda: m.Outcome("r1", ("alice",), np.arange(3, dtype=np.int64)),
        "fedcore.secagg.Abort": lambda: m.Abort("r1", 2, "too few"),
    }


def _fl() -> dict[str, Callable[[], Any]]:
    from fedcore.fl import messages as m

    arrays = (np.ones(2, dtype=np.float32), np.arange(3, dtype=np.int64))
    return {
        "fedcore.fl.RoundStart": lambda: m.RoundStart(2, arrays, ("alice", "bob"), {"lr": 0.1}, 1),
        "fedcore.fl.Wait": lambda: m.Wait(3),
        "fedcore.fl.Stop": lambda: m.Stop("done"),
        "fedcore.fl.ClientUpdate": lambda: m.ClientUpdate(2, arrays, 10),
    }


def _vertical() -> dict[str, Callable[[], Any]]:
    from fedcore.vertical import _messages as m

    values = np.array([0.5, -1.0])
    out: dict[str, Callable[[], Any]] = {
        f"fedcore.vertical.{cls.__name__}": (lambda cls=cls: cls(4, _he_vector()))
        for cls in (m.HostScore, m.Residual, m.FinalResidual, m.HostGradient, m.MaskedTerm)
    }
    out["fedcore.vertical.TermReply"] = lambda: m.TermReply(1, values)
    out["fedcore.vertical.Unmasked"] = lambda: m.Unmasked(2, values)
    out["fedcore.vertical.PheVector"] = _phe_vector
    return out


def _secureboost() -> dict[str, Callable[[], Any]]:
    from fedcore.vertical import _sb_messages as m

    rows = np.arange(3, dtype=np.int64)
    return {
        "fedcore.vertical.sb.Setup": lambda: m.Setup("paillier", _keys()[0], 100),
        "fedcore.vertical.sb.TreeStart": lambda: m.TreeStart(0, rows, b"\x01\x02"),
        "fedcore.vertical.sb.HistQuery": lambda: m.HistQuery(0, 1, [rows]),
        "fedcore.vertical.sb.Histograms": lambda: m.Histograms(0, 1, 2, 3, b"\x05" * 6),
        "fedcore.vertical.sb.SplitQuery": lambda: m.SplitQuery(0, 1, rows[:1], rows[1:2], [rows]),
        "fedcore.vertical.sb.SplitAnswer": lambda: m.SplitAnswer(0, 1, rows[:1], [np.array([True, False])]),
        "fedcore.vertical.sb.Finish": lambda: m.Finish(3),
    }


def _he() -> dict[str, Callable[[], Any]]:
    return {
        "fedcore.he.PublicKey": lambda: _keys()[0],
        "fedcore.he.EncryptedVector": _he_vector,
        "fedcore.he.ExportedPrivateKey": lambda: _keys()[1].export(ACCESS),
        "fedcore.he.PrivateKey": lambda: _keys()[1],
    }


def samples() -> dict[str, Callable[[], Any]]:
    """Wire name -> a function that builds one valid value of that type."""
    return {**_psi(), **_secagg(), **_fl(), **_vertical(), **_secureboost(), **_he()}
