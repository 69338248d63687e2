"""SecureBoost pieces against plain computations, and misuse refused by the sessions."""

from collections import deque

import numpy as np
import pytest

from fedcore import he
from fedcore.crypto.secret import ACCESS
from fedcore.errors import ProtocolError
from fedcore.session import Recv
from fedcore.vertical import _sb_crypto
from fedcore.vertical._sb_binning import fit_binner
from fedcore.vertical._sb_crypto import (
    GHCodec,
    PaillierScheme,
    PlainScheme,
    histogram_task,
    multiplications,
)
from fedcore.vertical._sb_messages import Histograms, Setup, TreeStart, pack_cts, unpack_cts
from fedcore.vertical._sb_protocol import GuestSession, HostSession
from fedcore.vertical._sb_tree import BoostParams


def test_codec_sums_decode_to_the_plain_sums() -> None:
    rng = np.random.default_rng(0)
    g, h = rng.uniform(-3, 3, 500), rng.uniform(0, 0.25, 500)
    codec = GHCodec(500)
    packed = codec.encode(g, h, 3.0, 0.25)
    got = codec.decode([sum(packed[:300]), sum(packed)], 3.0, 0.25)
    want = np.array([[g[:300].sum(), h[:300].sum(), 300], [g.sum(), h.sum(), 500]])
    np.testing.assert_allclose(got, want, atol=500 * 3.0 * 2.0**-40)
    with pytest.raises(ProtocolError):
        codec.decode(
            [sum(packed) + (1 << (codec.g_bits + codec.h_bits)) * 600], 3.0, 0.25
        )  # impossible count


def test_paillier_histograms_equal_plain_sums_on_single_and_paired_columns() -> None:
    rng = np.random.default_rng(1)
    rows, n_bins = 200, 3  # 200 > 4 * 3^2 rows: pairs of columns take the paired path
    bins = rng.integers(0, n_bins, size=(rows, 3)).astype(np.uint8)
    codec = GHCodec(rows)
    plain = codec.encode(rng.uniform(-1, 1, rows), rng.uniform(0, 1, rows), 1.0, 1.0)
    scheme = PaillierScheme(*he.generate_keypair(1024))
    nodes = [np.arange(rows), np.arange(0, rows, 3)]
    cts = scheme.encrypt(plain, None)
    encrypted = histogram_task(scheme.modulus, cts, bins, nodes, n_bins)
    expected = histogram_task(PlainScheme.modulus, plain, bins, nodes, n_bins)
    for enc, want in zip(encrypted, expected, strict=True):
        assert scheme.decrypt(enc, None) == want
    # the host's path: ciphertexts loaded from the wire as Montgomery rows, sums dumped back
    host = PaillierScheme(scheme.public_key)
    rows = host.load(pack_cts(cts, host.width()))
    as_rows = histogram_task(host.modulus, rows, bins, nodes, n_bins)
    blob = host.dump(as_rows)
    assert blob == pack_cts([c for node in encrypted for c in node], host.width())
    assert scheme.decrypt(unpack_cts(blob, host.width(), host.modulus), None) == [
        v for node in expected for v in node
    ]
    by_hand = [sum(p for p, b in zip(plain, bins[:, 2], strict=True) if b == k) for k in range(n_bins)]
    assert expected[0][2 * n_bins :] == by_hand


def test_a_host_with_a_key_beyond_the_kernel_sums_integers_instead(monkeypatch) -> None:
    rng = np.random.default_rng(11)
    rows, n_bins = 50, 4
    bins = rng.integers(0, n_bins, size=(rows, 2)).astype(np.uint8)
    codec = GHCodec(rows)
    plain = codec.encode(rng.uniform(-1, 1, rows), rng.uniform(0, 1, rows), 1.0, 1.0)
    scheme = PaillierScheme(*he.generate_keypair(1024))
    blob = pack_cts(scheme.encrypt(plain, None), scheme.width())
    nodes = [np.arange(rows)]
    host = PaillierScheme(scheme.public_key)
    on_rows = host.dump(histogram_task(host.modulus, host.load(blob), bins, nodes, n_bins))
    monkeypatch.setattr(_sb_crypto.montgomery, "supports", lambda modulus: False)  # as for n^2 > 4096 bits
    wide = PaillierScheme(scheme.public_key)
    cts = wide.load(blob)
    assert isinstance(cts, list)
    as_ints = wide.dump(histogram_task(wide.modulus, wide.take(cts, np.arange(rows)), bins, nodes, n_bins))
    assert as_ints == on_rows
    with pytest.raises(ValueError, match="outside"):
        wide.load(wide.modulus.to_bytes(wide.width(), "big"))


def test_packed_decryption_equals_one_by_one_and_refuses_wide_sums() -> None:
    public, private = he.generate_keypair(1024)
    scheme = PaillierScheme(public, private)
    rng = np.random.default_rng(3)
    bits = 132  # 7 sums per 1024-bit plaintext; 23 sums: groups of 7, 7, 7 and 2
    plain = [int(v) for v in rng.integers(0, 2**62, 23)]
    plain = [(v << 70) | (v >> 3) for v in plain] + [0, (1 << bits) - 1]
    cts = [*scheme.encrypt(plain, None), 1]  # an empty bin: the product of no ciphertexts
    phe_private = private.to_phe(ACCESS)
    by_phe = [phe_private.raw_decrypt(int(c)) for c in cts[:-1]] + [0]
    assert scheme.decrypt(cts, None, bits) == by_phe == [*plain, 0]
    assert scheme.decrypt(cts, None) == by_phe
    wide = scheme.encrypt([5, 7, 1 << bits], None)  # the top sum of its group overflows
    with pytest.raises(ProtocolError, match="does not decrypt"):
        scheme.decrypt(wide, None, bits)


class _Counted(int):
    products = 0

    def __mul__(self, other: object) -> "_Counted":
        _Counted.products += 1
        return _Counted(int(self) * int(other))  # type: ignore[call-overload]

    __rmul__ = __mul__

    def __mod__(self, other: object) -> "_Counted":
        return _Counted(int(self) % int(other))  # type: ignore[call-overload]


def test_the_bench_counts_the_kernels_multiplications_exactly() -> None:
    rng = np.random.default_rng(4)
    rows, n_bins = 120, 3  # the whole node takes the paired path, the half node single columns
    bins = rng.integers(0, n_bins, size=(rows, 3)).astype(np.uint8)
    nodes = [np.arange(rows), np.arange(0, rows, 4)]
    _Counted.products = 0
    histogram_task(2**61 - 1, [_Counted(v) for v in range(2, rows + 2)], bins, nodes, n_bins)
    assert _Counted.products == multiplications(bins, nodes, n_bins) > 0


def _sessions(scheme_name: str = "plain"):
    rng = np.random.default_rng(2)
    x_g, x_h = rng.normal(size=(60, 2)), rng.normal(size=(60, 3))
    y = (x_g[:, 0] + x_h[:, 0] > 0).astype(float)
    params = BoostParams(trees=1, max_depth=2, bins=8, min_samples_leaf=5)
    none = np.zeros(60, dtype=bool)
    bg, bh = fit_binner(x_g, 8, rng), fit_binner(x_h, 8, rng)
    guest = GuestSession("g", ("h",), bg.transform(x_g), bg, y, none, params, PlainScheme(), rng)
    host = HostSession("h", "g", bh.transform(x_h), bh, none, params, scheme_name, rng, rng)
    return guest, host


def test_a_host_refuses_a_scheme_it_did_not_agree_to() -> None:
    guest, host = _sessions(scheme_name="paillier")
    setup = guest.start()[0].message
    assert isinstance(setup, Setup) and setup.scheme == "plain"
    with pytest.raises(ProtocolError, match="agreed to 'paillier'"):
        host.receive("g", setup)


def test_the_guest_refuses_histograms_whose_counts_do_not_add_up() -> None:
    guest, host = _sessions()
    sends = guest.start()
    host.receive("g", sends[0].message)
    reply = host.receive("g", sends[1].message)[0].message
    assert isinstance(reply, Histograms)
    values = PlainScheme().width()
    top = (1 << (guest.codec.g_bits + guest.codec.h_bits)).to_bytes(values, "big")  # one row more
    first = (int.from_bytes(reply.cts[:values], "big") + int.from_bytes(top, "big")).to_bytes(values, "big")
    forged = Histograms(reply.tree, reply.level, reply.slots, reply.bins, first + reply.cts[values:])
    with pytest.raises(ProtocolError, match="do not add up"):
        guest.receive("h", forged)
    with pytest.raises(ProtocolError, match="expected Histograms from h"):
        guest.receive("mallory", reply)


def test_the_sessions_run_to_the_end_through_the_session_contract() -> None:
    guest, host = _sessions()
    assert host.start() == [] and host.tree == 0
    inbox: dict[str, deque] = {"g": deque(), "h": deque()}

    def post(sends) -> None:
        for send in sends:
            assert send.tag == ("sb/to_guest" if send.dst == "g" else "sb/to_host")
            inbox[send.dst].append(send.message)

    post(guest.start())
    while inbox["g"] or inbox["h"]:
        if inbox["h"]:
            assert host.expect() == Recv(("g",), "sb/to_host")
            post(host.receive("g", inbox["h"].popleft()))
        if inbox["g"]:
            assert guest.expect() == Recv(("h",), "sb/to_guest")
            post(guest.receive("h", inbox["g"].popleft()))
    assert guest.expect() is None and host.expect() is None
    assert len(guest.trees) == 1 and guest.close() == [] and host.close() == []


def test_a_paillier_host_refuses_ciphertexts_outside_its_ring() -> None:
    rng = np.random.default_rng(8)
    x_g, x_h = rng.normal(size=(40, 1)), rng.normal(size=(40, 2))
    y = (x_g[:, 0] > 0).astype(float)
    params = BoostParams(trees=1, max_depth=1, bins=4, min_samples_leaf=2)
    none = np.zeros(40, dtype=bool)
    bg, bh = fit_binner(x_g, 4, rng), fit_binner(x_h, 4, rng)
    scheme = PaillierScheme(*he.generate_keypair(1024))
    guest = GuestSession("g", ("h",), bg.transform(x_g), bg, y, none, params, scheme, rng)
    sends = guest.start()
    start = sends[1].message
    assert isinstance(start, TreeStart)
    width = scheme.width()
    for bad in (0, scheme.modulus, 2 ** (8 * width) - 1):
        host = HostSession("h", "g", bh.transform(x_h), bh, none, params, "paillier", rng, rng)
        host.receive("g", sends[0].message)
        forged = TreeStart(start.tree, start.rows, bad.to_bytes(width, "big") + start.cts[width:])
        with pytest.raises(ProtocolError, match="outside"):
            host.receive("g", forged)
    host = HostSession("h", "g", bh.transform(x_h), bh, none, params, "paillier", rng, rng)
    host.receive("g", sends[0].message)
    reply = host.receive("g", start)[0].message  # the genuine one is served
    assert isinstance(reply, Histograms) and len(reply.cts) == width * reply.slots * reply.bins
