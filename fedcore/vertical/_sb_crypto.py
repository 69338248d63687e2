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

* ``PaillierScheme``: fedcore.he keys (DJN encryption, CRT decryption, on the runtime);
  a host sums a bin by multiplying ciphertexts mod n^2.
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

import gmpy2
import numpy as np
from gmpy2 import mpz

from fedcore.errors import ProtocolError

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
        owner = _owner_encryptor(self._private_key)
        if owner is not None:
            return list(owner(plaintexts, runtime=runtime))
        from fedcore.he import _tasks  # fedcore.he's own chunked DJN encryption on the runtime

        key = self.public_key
        bounds = _tasks.chunk_bounds(len(plaintexts), getattr(runtime, "workers", 1))
        args = [(key.n, key.djn_base(), plaintexts[a:b]) for a, b in bounds]
        return [c for part in _tasks.run_chunks(runtime, _tasks.encrypt_ints_chunk, args) for c in part]

    def decrypt(self, ciphertexts: list[Any], runtime: Any, field_bits: int = 0) -> list[int]:
        """The plaintexts of ``ciphertexts``; with ``field_bits``, each known to be below 2^field_bits.

        With ``field_bits`` the sums are decrypted several to one exponentiation (see
        ``decrypt_packed_task``); a plaintext that breaks the promise raises ProtocolError.
        """
        from fedcore.he import _tasks

        # an empty bin is the product of no ciphertexts, 1: its sum is 0 without a decryption
        full = [i for i, c in enumerate(ciphertexts) if c != 1]
        out = [0] * len(ciphertexts)
        if not full:
            return out
        decryptor = _crt_decryptor(self._private_key)
        per = max(1, (self.public_key.bits - 1) // field_bits) if field_bits else 1
        bounds = _tasks.chunk_bounds(len(full), getattr(runtime, "workers", 1), align=per)
        args = [(decryptor, [ciphertexts[i] for i in full[a:b]], field_bits, per) for a, b in bounds]
        try:
            parts = _tasks.run_chunks(runtime, decrypt_packed_task, args)
        except ValueError as exc:
            raise ProtocolError(f"SecureBoost: a histogram does not decrypt: {exc}") from None
        for i, value in zip(full, (v for part in parts for v in part), strict=True):
            out[i] = value
        return out

    def width(self) -> int:
        return int(self.public_key.ciphertext_bytes)


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


# --------------------------------------------------------------------------- guest crypto


def _owner_encryptor(private_key: Any) -> Any:
    """The key owner's encryption with its factors (``PrivateKey.encrypt_ints``), if this fedcore.he has it.

    Same ciphertext distribution as the public-key path (fedcore.he's contract), only faster;
    None (use the public key) for a host, or for a fedcore.he without that API.
    """
    return getattr(private_key, "encrypt_ints", None) if private_key is not None else None


def _crt_decryptor(private_key: Any) -> Any:
    """The private key's CRT constants (a ``paillier.CRTDecryptor``; pickles for own workers only)."""
    return private_key._crt()


def decrypt_packed_task(decryptor: Any, cts: list[Any], field_bits: int, per: int) -> list[int]:
    """Decrypt ``cts`` (a runtime task of the key owner), ``per`` of them to one exponentiation.

    With the factors, the owner folds a group c_0..c_{k-1} into C = prod_j c_j^(2^(B j)) by
    Horner *modulo p^2 and q^2* (B = ``field_bits``; k squarings chains of B steps on
    half-size numbers), then decrypts C once: its plaintext is sum_j m_j 2^(B j), exact
    because every m_j < 2^B and k*B < bits(n). This is only arithmetic on ciphertexts the
    owner already holds: nothing is sent, and what it learns is the same m_j. Per sum it
    costs about (B + bits(n)/k) half-size squarings instead of bits(n).

    Raises:
        ValueError: a group's plaintext is 2^(k B) or more (its last sum is too wide). A too
            wide sum lower in a group carries into the next one instead of being refused:
            no honest host makes one, and a dishonest one could as well send in-range lies.
    """
    p, q, p2, q2 = decryptor.p, decryptor.q, decryptor.p2, decryptor.q2
    if per == 1 or not field_bits:
        plain = decryptor.decrypt_many(cts)
        if field_bits and any(m >> field_bits for m in plain):
            raise ValueError("a sum is wider than its fields")
        return [int(m) for m in plain]
    step = mpz(1) << field_bits
    folded_p, folded_q, sizes = [], [], []
    for start in range(0, len(cts), per):
        group = cts[start : start + per]
        sizes.append(len(group))
        for modulus, out in ((p2, folded_p), (q2, folded_q)):
            acc = mpz(group[-1]) % modulus
            for c in reversed(group[:-1]):
                acc = gmpy2.powmod(acc, step, modulus) * c % modulus
            out.append(acc)
    xp = gmpy2.powmod_base_list(folded_p, decryptor.p1, p2)
    xq = gmpy2.powmod_base_list(folded_q, decryptor.q1, q2)
    mask = (1 << field_bits) - 1
    values: list[int] = []
    for a, b, size in zip(xp, xq, sizes, strict=True):
        mp = (a - 1) // p * decryptor.hp % p
        mq = (b - 1) // q * decryptor.hq % q
        packed = int(mp + (mq - mp) * decryptor.p_inv_q % q * p)
        if packed >> (field_bits * size):
            raise ValueError("a sum is wider than its fields")
        values += [(packed >> (field_bits * j)) & mask for j in range(size)]
    return values


# --------------------------------------------------------------------------- host kernel


def histogram_task(
    modulus: int, cts: list[Any], bins: np.ndarray, nodes: list[np.ndarray], n_bins: int
) -> list[list[Any]]:
    """Bin sums of ``cts`` for every node and column of ``bins`` (a runtime task).

    Args:
        modulus: n^2 (sums are products mod n^2), or 0 for plain integer sums.
        cts: one ciphertext per row of ``bins``.
        bins: (rows, columns) uint8 bin indices.
        nodes: for each node, the positions of its rows in ``cts``.
        n_bins: bins per column.

    Returns:
        for each node, columns * n_bins sums, column by column.
    """
    if not modulus:
        return _plain_histograms(cts, bins, nodes, n_bins)
    out = []
    for positions in nodes:
        node_bins = bins[positions]
        node_cts = [cts[i] for i in positions.tolist()]
        sums: list[Any] = []
        column = 0
        while column < bins.shape[1]:
            if column + 1 < bins.shape[1] and len(positions) > PAIR_FACTOR * n_bins * n_bins:
                sums += _pair_sums(modulus, node_cts, node_bins[:, column], node_bins[:, column + 1], n_bins)
                column += 2
            else:
                sums += _column_sums(modulus, node_cts, node_bins[:, column], n_bins)
                column += 1
        out.append(sums)
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
                grid = grid.reshape(n_bins, n_bins) > 0
                used = int(grid.any(axis=1).sum() + grid.any(axis=0).sum())
                total += len(positions) + int(grid.sum()) - used
                column += 2
            else:
                total += len(positions) - int(np.count_nonzero(np.bincount(col)))
                column += 1
    return total


def _runs(modulus: int, items: list[Any], keys: np.ndarray, size: int) -> list[Any]:
    """The sum of ``items`` for each key value 0..size-1 (empty: the neutral element).

    One pass in row order, each item multiplied into its key's accumulator: measured ~25%
    faster per row than sorting into runs first (no reordered copy, no slices).
    """
    sums: list[Any] = [None] * size
    if modulus:
        for key, c in zip(keys.tolist(), items, strict=True):
            acc = sums[key]
            sums[key] = c if acc is None else acc * c % modulus
    else:
        for key, c in zip(keys.tolist(), items, strict=True):
            acc = sums[key]
            sums[key] = c if acc is None else acc + c
    zero = mpz(1) if modulus else 0
    return [zero if acc is None else acc for acc in sums]


def _column_sums(modulus: int, cts: list[Any], column: np.ndarray, n_bins: int) -> list[Any]:
    return _runs(modulus, cts, column.astype(np.intp), n_bins)


def _pair_sums(modulus: int, cts: list[Any], a: np.ndarray, b: np.ndarray, n_bins: int) -> list[Any]:
    cells = a.astype(np.intp) * n_bins + b.astype(np.intp)
    present = np.unique(cells)
    cell_sums = _runs(modulus, cts, np.searchsorted(present, cells), len(present))
    firsts = _runs(modulus, cell_sums, present // n_bins, n_bins)
    seconds = _runs(modulus, cell_sums, present % n_bins, n_bins)
    return firsts + seconds


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
