"""SecureBoost's gradient packing and encrypted histograms: (g, h, 1) in one Paillier ciphertext.

Packing (SecureBoost+, Chen et al. 2021, sec. 4.1, "GH packing", as FATE and SecretFlow
pack): per tree the guest scales its gradients by g_b = max|g| and hessians by
h_b = max h (both stay at the guest) and encodes row i as three non-negative fixed-point
fields of one plaintext

    P_i = u_i + v_i * 2^Wu + 1 * 2^(Wu + Wv),   u_i = round((g_i / g_b + 1) * 2^F),
                                                v_i = round(h_i / h_b * 2^F),

so a product of ciphertexts (a Paillier sum) adds every field at once: the offset "+1"
keeps the g field non-negative, so no field ever borrows from the next, and the widths
Wc = bits(max_rows), Wu = F + 1 + Wc, Wv = F + Wc leave room for the sum over every row a
tree can hold. The top field counts the rows, which gives the guest each bin's count
(for min_samples_leaf) and removes the offset: G = (sum u - count * 2^F) * g_b / 2^F.
F = 40 fractional bits: each row's g and h are rounded to 2^-41 of their bound.

Schemes (the crypto seam of the sessions):

* ``PaillierScheme``: fedcore.he keys (DJN encryption, CRT decryption with several sums
  to one exponentiation, on the runtime: ``encrypt_ints`` / ``decrypt_ints``); a host loads
  the guest's ciphertexts once per tree as rows in Montgomery form mod n^2
  (``fedcore.crypto.montgomery.Ring``) and sums a bin by multiplying rows there (the C
  kernel: GMP's mpn layer, or AVX-512 IFMA eight products at a time).
* ``PlainScheme``: the identity -- "ciphertexts" are the plaintexts and a sum is a sum
  (the host kernel sums them exactly in int64 pieces with numpy). NOT private: it exists
  so that tests can check on large data that the sessions are lossless without paying for
  Paillier; the driver uses it only when asked for by name, and a host only when its own
  parameters say so.

Host kernel (``histogram_task``): for each node and feature it multiplies each row's ciphertext
into its bin's accumulator (one modular multiplication per row and feature).
When a node has many more rows than a pair of features has bin pairs, two features are
done together: rows are summed into their (bin_a, bin_b) cells first, then each
feature's bins are sums of cells, so the pair costs rows + 2 * cells multiplications
instead of 2 * rows. Exact, like every other step: only additions of ciphertexts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore.crypto import montgomery, paillier
from fedcore.crypto.montgomery import Ring
from fedcore.errors import ProtocolError
from fedcore.vertical._sb_messages import pack_cts, unpack_cts

FRAC_BITS = 40
PAIR_FACTOR = 4  # pair features when a node has this many times more rows than bin pairs


@dataclass(frozen=True)
class GHCodec:
    """The field layout for trees of at most ``max_rows`` rows."""

    max_rows: int
    frac_bits: int = FRAC_BITS

    @property
    def count_bits(self) -> int:
        return max(1, int(self.max_rows).bit_length())

    @property
    def g_bits(self) -> int:
        return self.frac_bits + 1 + self.count_bits

    @property
    def h_bits(self) -> int:
        return self.frac_bits + self.count_bits

    @property
    def plain_bits(self) -> int:
        return self.g_bits + self.h_bits + self.count_bits

    def encode(self, g: np.ndarray, h: np.ndarray, g_bound: float, h_bound: float) -> list[int]:
        """One packed plaintext per row (see the module header)."""
        scale = float(2**self.frac_bits)
        u = np.rint((g / g_bound + 1.0) * scale).astype(np.int64)
        v = np.rint(h / h_bound * scale).astype(np.int64)
        top, shift = 1 << (self.g_bits + self.h_bits), self.g_bits
        return [a | (b << shift) | top for a, b in zip(u.tolist(), v.tolist(), strict=True)]

    def decode(self, sums: Sequence[int], g_bound: float, h_bound: float) -> np.ndarray:
        """(G, H, count) per packed sum, as a float array of shape (len(sums), 3).

        Raises:
            ProtocolError: a sum no honest host could have made (fields out of range).
        """
        mask_g, mask_h = (1 << self.g_bits) - 1, (1 << self.h_bits) - 1
        one = 1 << self.frac_bits
        out = np.empty((len(sums), 3), dtype=np.float64)
        for i, p in enumerate(sums):
            p = int(p)
            count = p >> (self.g_bits + self.h_bits)
            u, v = p & mask_g, (p >> self.g_bits) & mask_h
            if count > self.max_rows or u > 2 * one * count or v > one * count:
                raise ProtocolError(
                    "SecureBoost: a histogram sum does not decode to a possible (g, h, count)"
                )
            out[i] = (u - count * one, v, count)
        out[:, 0] *= g_bound / one
        out[:, 1] *= h_bound / one
        return out


class PaillierScheme:
    """Paillier through fedcore.he: the guest holds the key pair, hosts the public key."""

    name = "paillier"

    def __init__(self, public_key: Any, private_key: Any = None):
        self.public_key, self._private_key = public_key, private_key
        self._ring: Ring | None = None

    @property
    def modulus(self) -> int:
        """n^2: a host multiplies ciphertexts modulo it."""
        return int(self.public_key.n2)

    def check_room(self, codec: GHCodec) -> None:
        if codec.plain_bits >= self.public_key.bits - 2:
            raise ProtocolError(
                f"SecureBoost: {codec.plain_bits}-bit sums do not fit a {self.public_key.bits}-bit key"
            )

    def encrypt(self, plaintexts: list[int], runtime: Any) -> list[Any]:
        # the guest encrypts under its own key with the factors (same ciphertexts, faster)
        key = self._private_key if self._private_key is not None else self.public_key
        return list(key.encrypt_ints(plaintexts, runtime=runtime))

    def decrypt(self, ciphertexts: list[Any], runtime: Any, field_bits: int = 0) -> list[int]:
        """The plaintexts of ``ciphertexts``; with ``field_bits``, each known to be below 2^field_bits.

        With ``field_bits`` the sums are decrypted several to one exponentiation (the private
        key's ``decrypt_ints``); a plaintext that breaks the promise raises ProtocolError.
        """
        # an empty bin is the product of no ciphertexts, 1: its sum is 0 without a decryption
        full = [i for i, c in enumerate(ciphertexts) if c != 1]
        out = [0] * len(ciphertexts)
        if not full:
            return out
        try:
            plain = self._private_key.decrypt_ints(
                [ciphertexts[i] for i in full], runtime=runtime, field_bits=field_bits
            )
        except ValueError as exc:
            raise ProtocolError(f"SecureBoost: a histogram does not decrypt: {exc}") from None
        for i, value in zip(full, plain, strict=True):
            out[i] = value
        return out

    def width(self) -> int:
        return int(self.public_key.ciphertext_bytes)

    def ring(self) -> Ring:
        """n^2's Ring, built on first use."""
        if self._ring is None:
            self._ring = Ring(self.modulus)
        return self._ring

    def load(self, blob: bytes) -> Any:
        """A host's ciphertexts from the wire (ValueError when malformed): Montgomery rows mod
        n^2, or a list of integers for keys whose n^2 is beyond the kernel (over 4096 bits)."""
        if not montgomery.supports(self.modulus):
            return unpack_cts(blob, self.width(), self.modulus)
        return self.ring().load(blob, self.width())

    def take(self, cts: Any, rows: np.ndarray) -> Any:
        if isinstance(cts, list):
            return _take_list(cts, rows)
        return np.asarray(cts[rows])

    def dump(self, sums: list[Any]) -> bytes:
        """Histogram sums (Montgomery rows, or lists of integers) as the wire's fixed-width blob."""
        if sums and isinstance(sums[0], list):
            return _dump_lists(sums, self.width())
        ring = self.ring()
        rows = np.concatenate(sums) if sums else np.zeros((0, ring.limbs), dtype=np.uint64)
        return ring.dump(rows, self.width())


class PlainScheme:
    """Identity "encryption" for lossless checks at scale. Offers no privacy at all."""

    name = "plain"
    modulus = 0

    def __init__(self, plain_bits: int = 256):
        self.plain_bits = plain_bits

    def check_room(self, codec: GHCodec) -> None:
        return None

    def encrypt(self, plaintexts: list[int], runtime: Any) -> list[Any]:
        return list(plaintexts)

    def decrypt(self, ciphertexts: list[Any], runtime: Any, field_bits: int = 0) -> list[int]:
        return [int(c) for c in ciphertexts]

    def width(self) -> int:
        return self.plain_bits // 8

    def load(self, blob: bytes) -> list[Any]:
        return unpack_cts(blob, self.width(), 0)

    def take(self, cts: list[Any], rows: np.ndarray) -> list[Any]:
        return _take_list(cts, rows)

    def dump(self, sums: list[list[Any]]) -> bytes:
        return _dump_lists(sums, self.width())


def _take_list(cts: list[Any], rows: np.ndarray) -> list[Any]:
    return [cts[i] for i in rows.tolist()]


def _dump_lists(sums: list[list[Any]], width: int) -> bytes:
    return pack_cts([c for part in sums for c in part], width)


# --------------------------------------------------------------------------- host kernel


def histogram_task(
    modulus: int, cts: Any, bins: np.ndarray, nodes: list[np.ndarray], n_bins: int
) -> list[Any]:
    """Bin sums of ``cts`` for every node and column of ``bins`` (a runtime task).

    Args:
        modulus: n^2 (sums are products mod n^2), or 0 for plain integer sums.
        cts: one ciphertext per row of ``bins``: Montgomery rows mod ``modulus`` (a
            ``Ring`` array, sums come back as such rows), or a list of integers.
        bins: (rows, columns) uint8 bin indices.
        nodes: for each node, the positions of its rows in ``cts``.
        n_bins: bins per column.

    Returns:
        for each node, columns * n_bins sums, column by column (one array of rows per node
        for Montgomery rows).
    """
    if not modulus:
        return _plain_histograms(cts, bins, nodes, n_bins)
    rows = isinstance(cts, np.ndarray)
    ring: Any = Ring(modulus) if rows else modulus
    out: list[Any] = []
    for positions in nodes:
        node_bins = bins[positions]
        node_cts = cts[positions] if rows else [cts[i] for i in positions.tolist()]
        sums: list[Any] = []
        column = 0
        while column < bins.shape[1]:
            if column + 1 < bins.shape[1] and len(positions) > PAIR_FACTOR * n_bins * n_bins:
                sums += _pair_sums(ring, node_cts, node_bins[:, column], node_bins[:, column + 1], n_bins)
                column += 2
            else:
                sums.append(_runs(ring, node_cts, node_bins[:, column].astype(np.intp), n_bins))
                column += 1
        if rows:
            out.append(np.concatenate(sums) if sums else ring.one(0))
        else:
            out.append([c for part in sums for c in part])
    return out


def multiplications(bins: np.ndarray, nodes: list[np.ndarray], n_bins: int) -> int:
    """How many ciphertext multiplications ``histogram_task`` makes for these nodes (for the bench)."""
    total = 0
    for positions in nodes:
        node_bins = bins[positions].astype(np.intp)
        column = 0
        while column < bins.shape[1]:
            col = node_bins[:, column]
            if column + 1 < bins.shape[1] and len(positions) > PAIR_FACTOR * n_bins * n_bins:
                grid = np.bincount(col * n_bins + node_bins[:, column + 1], minlength=n_bins * n_bins)
                occupied = grid.reshape(n_bins, n_bins) > 0
                used = int(occupied.any(axis=1).sum() + occupied.any(axis=0).sum())
                total += len(positions) + int(occupied.sum()) - used
                column += 2
            else:
                total += len(positions) - int(np.count_nonzero(np.bincount(col)))
                column += 1
    return total


def _runs(ring: Any, items: Any, keys: np.ndarray, size: int) -> Any:
    """The sum of ``items`` for each key value 0..size-1 (empty: the neutral element).

    ``ring`` is a Ring for Montgomery rows, or the modulus n^2 for a list of integers.
    """
    if isinstance(ring, Ring):
        return ring.sums_by_key(items, keys, size)
    return paillier.sums_by_key(ring, items, keys.tolist(), size)


def _pair_sums(ring: Any, cts: Any, a: np.ndarray, b: np.ndarray, n_bins: int) -> list[Any]:
    cells = a.astype(np.intp) * n_bins + b.astype(np.intp)
    present = np.unique(cells)
    index = np.empty(n_bins * n_bins, dtype=np.intp)
    index[present] = np.arange(len(present))
    cell_sums = _runs(ring, cts, index[cells], len(present))
    firsts = _runs(ring, cell_sums, present // n_bins, n_bins)
    seconds = _runs(ring, cell_sums, present % n_bins, n_bins)
    return [firsts, seconds]


def _plain_histograms(
    values: list[Any], bins: np.ndarray, nodes: list[np.ndarray], n_bins: int
) -> list[list[Any]]:
    """``histogram_task`` for PlainScheme: the same integer sums, in 32-bit pieces with numpy.

    Each piece's sum over < 2^21 rows stays below 2^53, so float64 bincount is exact.
    """
    ints = [int(v) for v in values]
    width = max((v.bit_length() for v in ints), default=1)
    chunk = 32
    fields = [
        np.array([(v >> shift) & ((1 << chunk) - 1) for v in ints], dtype=np.int64)
        for shift in range(0, width, chunk)
    ]
    out = []
    for positions in nodes:
        node_bins = bins[positions]
        sums: list[Any] = []
        for column in range(bins.shape[1]):
            keys = node_bins[:, column]
            totals = [
                np.bincount(keys, field[positions], minlength=n_bins).astype(np.int64) for field in fields
            ]
            sums += [sum(int(t[b]) << (chunk * k) for k, t in enumerate(totals)) for b in range(n_bins)]
        out.append(sums)
    return out
