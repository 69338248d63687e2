"""SecureBoost (vertical gradient-boosted trees with Paillier) as sans-I/O state machines.

Theory of operation
-------------------
Follows Cheng et al., "SecureBoost: A Lossless Federated Learning Framework" (IEEE
Intelligent Systems 36(6), 2021; arXiv:1901.08755, sec. 4-5, algorithms 1-2), with the
histogram optimisations of SecureBoost+ (Chen et al., arXiv:2110.10927): packed g/h,
histogram subtraction, level-wise growth. Rows are already aligned (PSI). The guest G
holds the labels, its columns and the only Paillier key pair; hosts H_1..H_k hold columns.
Every party bins its own columns locally (``_sb_binning``) and shares the public plan
(``BoostParams``, validation rows from the job seed).

Per tree (t), level by level:

1. G computes g, h for every row from its current raw scores, samples the tree's rows,
   packs (g, h, 1) of each sampled row into one ciphertext (``_sb_crypto``) and sends
   TreeStart [[gh]] to every host. Each host picks its columns for the tree (its own
   colsample, in an order only it knows: a "slot" names a column only to its owner) and
   returns Histograms: per slot and bin the product of the bin's ciphertexts (an
   encrypted (G, H, count)).
2. G decrypts, builds its own histograms in the clear, and for every open node takes the
   best split over all parties (``_sb_tree.best_split``). For a host's best split G sends
   SplitQuery (slot, bin, and every row routed to the node); the host looks up its
   threshold, keeps it under a fresh random 62-bit id and answers SplitAnswer (id, which
   rows go left). G records the node as (host, id) only. G's own splits stay at G.
3. While the next level may still split, G sends HistQuery with the rows of the *smaller*
   child of each split node; hosts return those histograms and G gets each larger
   child's as parent minus smaller child on decrypted sums (histogram subtraction: each
   level after the root costs at most half the rows, and half the ciphertexts cross).
4. At max depth, or when nothing splits, G computes the leaf weights -lr G / (H + lambda)
   from its plaintext g, h and updates its raw scores (it knows every row's leaf). With a
   validation fraction, G stops after ``patience`` trees without a better validation loss
   and keeps the best prefix; Finish tells hosts how many trees to keep.

What each party learns (semi-honest):

* Host: the Paillier public key; ciphertexts under G's key (semantically secure: nothing
  about g, h or y); the instance space of every node it builds a histogram for or splits
  (which aligned rows reach it, and which go left at its own splits); the plan. It never
  sees labels, gradients, G's columns, leaf weights, other hosts' splits or predictions.
* Guest: per node and host slot the bin sums (G, H, count), hence the best splits'
  quality and, for the host's chosen split, which rows go left -- the known leakage of
  SecureBoost (the paper, sec. 6). G never sees host feature values, thresholds or
  which column a slot is (the host permutes its columns per tree).
* Colluding pair: G with a host learns that host's column values' ordering per bin (its
  own); two hosts together learn only each other's instance spaces and split ids. A
  colluding guest and host learn nothing more about another host than G alone does.

Per-tree leakage of g, h through the bin sums is inherent to SecureBoost; differential
privacy is out of scope. A silent party stalls the others (Timeout); there is no dropout
rule. The sessions follow ``fedcore.session`` and do no I/O: ``start()`` and ``receive()``
return ``Send`` actions (every message to a host under ``TO_HOST``, to the guest under
``TO_GUEST``: each side reads one ordered stream) and ``expect()`` names the ``Recv`` they
wait for next. The guest's transitions are ``GuestSession.receive`` (histograms, then split
answers, level by level); the host's are ``HostSession._HANDLERS`` (it answers whatever the
guest asks, in order). Randomness and the runtime are passed in, and the crypto scheme is a
seam (``PaillierScheme`` or the test-only ``PlainScheme``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore.errors import ProtocolError
from fedcore.he import _tasks
from fedcore.session import Recv, Send
from fedcore.vertical import _sb_tree as T
from fedcore.vertical._sb_binning import Binner
from fedcore.vertical._sb_crypto import GHCodec, PaillierScheme, PlainScheme, histogram_task, multiplications
from fedcore.vertical._sb_messages import (
    Finish,
    Histograms,
    HistQuery,
    Setup,
    SplitAnswer,
    SplitQuery,
    TreeStart,
    pack_cts,
    unpack_cts,
)

TO_HOST = "sb/to_host"
TO_GUEST = "sb/to_guest"


class Stage(enum.Enum):
    """Where a SecureBoost session is."""

    AWAIT_HISTOGRAMS = "await_histograms"
    AWAIT_SPLITS = "await_splits"
    AWAIT_GUEST = "await_guest"
    DONE = "done"


@dataclass
class _Open:
    """A node of the growing tree that may still split, as the guest sees it."""

    index: int
    depth: int
    rows_all: np.ndarray  # every aligned row routed here (sampled or not, validation included)
    rows_hist: np.ndarray  # the sampled training rows here
    parent: _Open | None = None
    built: bool = True  # histogram computed (True) or parent minus sibling (False)
    sibling: _Open | None = None
    hists: dict[str, np.ndarray] = field(default_factory=dict)
    split: tuple[str, T.Split] | None = None


def _bound(values: np.ndarray) -> float:
    top = float(np.max(np.abs(values))) if len(values) else 0.0
    return top if top > 0 else 1.0


class GuestSession:
    """The label holder: its binned columns, labels, the key pair and the boosting loop.

    Args:
        me: guest name. hosts: host names. bins: (rows, columns) uint8 of the guest's columns.
        binner: the guest's thresholds. y: labels (0/1 for binary). validation: bool mask of
        the public validation rows. params: the plan. scheme: crypto with the private key.
        rng: the guest's generator (row and column sampling). runtime: local runtime.
    """

    def __init__(
        self,
        me: str,
        hosts: tuple[str, ...],
        bins: np.ndarray,
        binner: Binner,
        y: np.ndarray,
        validation: np.ndarray,
        params: T.BoostParams,
        scheme: Any,
        rng: np.random.Generator,
        runtime: Any = None,
    ):
        self.me, self.hosts, self.bins, self.binner = me, tuple(hosts), bins, binner
        self.y, self.validation, self.params = np.asarray(y, dtype=np.float64), validation, params
        self.scheme, self.rng, self.runtime = scheme, rng, runtime
        self.train_rows = np.flatnonzero(~validation)
        self.codec = GHCodec(max(1, len(self.train_rows)))
        scheme.check_room(self.codec)
        self.base = T.base_score(params.objective, self.y[self.train_rows])
        self.raw = np.full(len(self.y), self.base)
        self.trees: list[T.Tree] = []
        self.val_losses: list[float] = []
        self.stage = Stage.AWAIT_HISTOGRAMS
        self._waiting = 0
        self._open: list[_Open] = []
        self._level = 0
        self._columns = np.arange(bins.shape[1])
        self._g = self._h = np.zeros(0)
        self._bounds = (1.0, 1.0)
        self._n_bins = max((binner.bins_of(c) for c in range(binner.columns)), default=1)

    @property
    def tree(self) -> int:
        return len(self.trees)

    def start(self) -> list[Send]:
        key = getattr(self.scheme, "public_key", None)
        setup = Setup(self.scheme.name, key, self.codec.max_rows)
        return [Send(h, TO_HOST, setup) for h in self.hosts] + self._begin_tree()

    def expect(self) -> Recv | None:
        """The next host's answer (hosts answer in turn); None when training is over."""
        if self.stage is Stage.DONE:
            return None
        return Recv((self.hosts[self._waiting],), TO_GUEST)

    def close(self) -> list[Send]:
        return []  # no tolerant waits: every host must answer

    def receive(self, sender: str, message: Any) -> list[Send]:
        """Take the expected message; returns what to send next.

        Raises:
            ProtocolError: the wrong sender, kind, tree, level or size.
        """
        where = f"SecureBoost at {self.me}, tree {self.tree}, level {self._level}"
        want = Histograms if self.stage is Stage.AWAIT_HISTOGRAMS else SplitAnswer
        if self.stage is Stage.DONE or sender != self.hosts[self._waiting] or not isinstance(message, want):
            raise ProtocolError(
                f"{where}: expected {want.__name__} from {self.hosts[self._waiting]}, "
                f"got {type(message).__name__} from {sender}"
            )
        if message.tree != self.tree or message.level != self._level:
            raise ProtocolError(f"{where}: {sender} answered for tree {message.tree}, level {message.level}")
        if isinstance(message, Histograms):
            self._on_histograms(sender, message)
        else:
            self._on_answer(sender, message)
        self._waiting += 1
        if self._waiting < len(self.hosts):
            return []
        self._waiting = 0
        return self._after_splits() if want is SplitAnswer else self._choose_splits()

    # ------------------------------------------------------------------ a tree

    def _begin_tree(self) -> list[Send]:
        p = self.params
        g, h = T.gradients(p.objective, self.raw, self.y)
        rows = self.train_rows
        if p.subsample < 1:
            take = max(1, round(len(rows) * p.subsample))
            rows = np.sort(self.rng.choice(rows, take, replace=False))
        self._g, self._h = g, h
        self._bounds = (_bound(g[rows]), _bound(h[rows]))
        width = self.bins.shape[1]
        take = max(1, round(width * p.colsample)) if width else 0
        self._columns = (
            np.sort(self.rng.choice(width, take, replace=False)) if take < width else np.arange(width)
        )
        self.current = T.Tree([T.Node()])
        root = _Open(0, 0, np.arange(len(self.y)), rows)
        root.hists[self.me] = self._own_hist(rows)
        self._open, self._level = [root], 0
        self.stage = Stage.AWAIT_HISTOGRAMS
        plain = self.codec.encode(g[rows], h[rows], *self._bounds)
        blob = pack_cts(self.scheme.encrypt(plain, self.runtime), self.scheme.width())
        start = TreeStart(self.tree, rows.astype(np.int64), blob)
        return [Send(host, TO_HOST, start) for host in self.hosts]

    def _own_hist(self, rows: np.ndarray) -> np.ndarray:
        """The guest's plaintext (G, H, count) histogram of ``rows`` over its sampled columns."""
        n_bins = self._n_bins
        cols = self._columns
        out = np.zeros((len(cols), n_bins, 3))
        if not len(cols):
            return out
        flat = (self.bins[np.ix_(rows, cols)].astype(np.int64) + np.arange(len(cols)) * n_bins).ravel()
        size = len(cols) * n_bins
        for k, weights in enumerate((self._g[rows], self._h[rows], np.ones(len(rows)))):
            out[..., k] = np.bincount(flat, np.repeat(weights, len(cols)), minlength=size).reshape(
                len(cols), n_bins
            )
        return out

    def _on_histograms(self, sender: str, message: Histograms) -> None:
        built = [node for node in self._open if node.built]
        count = len(built) * message.slots * message.bins
        try:
            cts = unpack_cts(message.cts, self.scheme.width(), self.scheme.modulus)
        except ValueError as exc:
            raise ProtocolError(f"SecureBoost: Histograms from {sender}: {exc}") from None
        if len(cts) != count:
            raise ProtocolError(
                f"SecureBoost: Histograms from {sender} has {len(cts)} sums, expected {count}"
            )
        sums = self.codec.decode(self.scheme.decrypt(cts, self.runtime, self.codec.plain_bits), *self._bounds)
        hists = sums.reshape(len(built), message.slots, message.bins, 3)
        for node, hist in zip(built, hists, strict=True):
            if message.slots and not np.all(hist[..., 2].sum(axis=1) == len(node.rows_hist)):
                raise ProtocolError(
                    f"SecureBoost: Histograms from {sender}: bin counts do not add up to the node"
                )
            node.hists[sender] = hist

    def _choose_splits(self) -> list[Send]:
        for node in self._open:
            if not node.built:
                assert node.parent is not None and node.sibling is not None  # set when the pair was made
                node.hists = {p: node.parent.hists[p] - node.sibling.hists[p] for p in node.parent.hists}
            node.split = None
            for party in (self.me, *self.hosts):
                found = T.best_split(node.hists[party], self.params)
                if found is not None and (node.split is None or found.gain > node.split[1].gain):
                    node.split = (party, found)
        self.stage = Stage.AWAIT_SPLITS
        sends = []
        for host in self.hosts:
            mine = [(n, n.split[1]) for n in self._open if n.split is not None and n.split[0] == host]
            query = SplitQuery(
                self.tree,
                self._level,
                np.array([split.slot for _, split in mine], dtype=np.int64),
                np.array([split.bin for _, split in mine], dtype=np.int64),
                [n.rows_all.astype(np.int64) for n, _ in mine],
            )
            sends.append(Send(host, TO_HOST, query))
        self._pending = {
            host: [n for n in self._open if n.split is not None and n.split[0] == host] for host in self.hosts
        }
        self._lefts: dict[int, np.ndarray] = {}
        for node in self._open:
            if node.split is not None and node.split[0] == self.me:
                column = int(self._columns[node.split[1].slot])
                self._lefts[node.index] = self.bins[node.rows_all, column] <= node.split[1].bin
                thresholds = self.binner.thresholds[column]
                self.current.nodes[node.index] = T.Node(
                    owner=self.me, feature=column, threshold=float(thresholds[node.split[1].bin])
                )
        return sends

    def _on_answer(self, sender: str, message: SplitAnswer) -> None:
        nodes = self._pending[sender]
        if len(message.ids) != len(nodes):
            raise ProtocolError(
                f"SecureBoost: SplitAnswer from {sender} has {len(message.ids)} ids, expected {len(nodes)}"
            )
        for node, split_id, left in zip(nodes, message.ids.tolist(), message.left, strict=True):
            if len(left) != len(node.rows_all):
                raise ProtocolError(f"SecureBoost: SplitAnswer from {sender}: a mask of the wrong length")
            self._lefts[node.index] = left
            self.current.nodes[node.index] = T.Node(owner=sender, split_id=int(split_id))

    def _after_splits(self) -> list[Send]:
        children: list[_Open] = []
        for node in self._open:
            if node.split is None:
                self._leaf(node)
                continue
            left_mask = self._lefts[node.index]
            left_all, right_all = node.rows_all[left_mask], node.rows_all[~left_mask]
            in_left = np.isin(node.rows_hist, left_all, assume_unique=True)
            pair = []
            for rows_all, rows_hist in (
                (left_all, node.rows_hist[in_left]),
                (right_all, node.rows_hist[~in_left]),
            ):
                index = len(self.current.nodes)
                self.current.nodes.append(T.Node())
                pair.append(_Open(index, node.depth + 1, rows_all, rows_hist, parent=node))
            self.current.nodes[node.index].left, self.current.nodes[node.index].right = (
                pair[0].index,
                pair[1].index,
            )
            small, large = sorted(pair, key=lambda n: len(n.rows_hist))
            small.sibling, large.sibling, large.built = large, small, False
            children += pair
        self._level += 1
        if not children or self._level >= self.params.max_depth:
            return self._end_tree(children)
        self._open = children
        for node in children:
            if node.built:
                node.hists[self.me] = self._own_hist(node.rows_hist)
        self.stage = Stage.AWAIT_HISTOGRAMS
        query = HistQuery(self.tree, self._level, [n.rows_hist.astype(np.int64) for n in children if n.built])
        return [Send(host, TO_HOST, query) for host in self.hosts]

    def _leaf(self, node: _Open) -> None:
        rows = node.rows_hist
        value = T.leaf_value(float(self._g[rows].sum()), float(self._h[rows].sum()), self.params)
        self.current.nodes[node.index].value = value
        self.raw[node.rows_all] += value

    def _end_tree(self, leaves: list[_Open]) -> list[Send]:
        for node in leaves:
            self._leaf(node)
        self.trees.append(self.current)
        if self._should_stop():
            self.stage = Stage.DONE
            return [Send(host, TO_HOST, Finish(len(self.trees))) for host in self.hosts]
        return self._begin_tree()

    def _should_stop(self) -> bool:
        p = self.params
        if p.validation_fraction > 0 and self.validation.any():
            rows = self.validation
            self.val_losses.append(T.loss(p.objective, self.raw[rows], self.y[rows]))
            best = int(np.argmin(self.val_losses))
            if len(self.val_losses) - 1 - best >= p.patience:
                del self.trees[best + 1 :]
                return True
        return len(self.trees) >= p.trees


class HostSession:
    """A host: its binned columns and thresholds; answers the guest's queries.

    Args:
        me: host name. guest: guest name. bins: (rows, columns) uint8. binner: thresholds.
        validation: the public validation mask. params: the plan. scheme_name: the scheme this
        host agreed to ("paillier", or "plain" only in tests). rng: the host's generator (column
        sampling and order). id_rng: a generator seeded from os.urandom for split ids. runtime.
    """

    def __init__(
        self,
        me: str,
        guest: str,
        bins: np.ndarray,
        binner: Binner,
        validation: np.ndarray,
        params: T.BoostParams,
        scheme_name: str,
        rng: np.random.Generator,
        id_rng: np.random.Generator,
        runtime: Any = None,
    ):
        self.me, self.guest, self.bins, self.binner = me, guest, bins, binner
        self.validation, self.params, self.scheme_name = validation, params, scheme_name
        self.rng, self.id_rng, self.runtime = rng, id_rng, runtime
        self.splits: dict[int, tuple[int, int, float]] = {}  # id -> (tree, column, threshold)
        self.stage = Stage.AWAIT_GUEST
        self.scheme: Any = None
        self.codec: GHCodec | None = None
        self._tree = -1
        self._level = 0
        self._rows = np.zeros(0, dtype=np.int64)
        self._cts: Any = []  # this tree's ciphertexts, as the scheme loads them
        self._columns = np.zeros(0, dtype=np.int64)
        self._n_bins = max((binner.bins_of(c) for c in range(binner.columns)), default=1)
        # what this host did, for benchmarks: ciphertexts received, ciphertext additions, sums sent
        self.work = {"encrypted": 0, "additions": 0, "sums": 0, "multiplications": 0}
        self.count_multiplications = False  # the bench counts the kernel's real multiplications

    @property
    def tree(self) -> int:
        """The tree this host is answering for (0 before the first TreeStart)."""
        return max(0, self._tree)

    def start(self) -> list[Send]:
        return []  # the guest speaks first

    def expect(self) -> Recv | None:
        """The guest's next message; None once it said Finish."""
        return None if self.stage is Stage.DONE else Recv((self.guest,), TO_HOST)

    def close(self) -> list[Send]:
        return []  # no tolerant waits

    def receive(self, sender: str, message: Any) -> list[Send]:
        """Take the guest's next message; returns the reply.

        Raises:
            ProtocolError: a message out of order or inconsistent with the plan.
        """
        if self.stage is Stage.DONE or sender != self.guest:
            raise ProtocolError(
                f"SecureBoost at {self.me}: unexpected {type(message).__name__} from {sender}"
            )
        handler = self._HANDLERS.get(type(message))
        if handler is None or (self.scheme is None) != (type(message) is Setup):
            raise ProtocolError(f"SecureBoost at {self.me}: {type(message).__name__} out of order")
        return handler(self, message)

    def _fail(self, what: str) -> ProtocolError:
        return ProtocolError(f"SecureBoost at {self.me}, tree {self._tree}: {what} from {self.guest}")

    def _on_setup(self, message: Setup) -> list[Send]:
        if message.scheme != self.scheme_name:
            raise self._fail(f"scheme {message.scheme!r} where this host agreed to {self.scheme_name!r}")
        self.codec = GHCodec(message.max_rows)
        self.scheme = PaillierScheme(message.public_key) if message.scheme == "paillier" else PlainScheme()
        self.scheme.check_room(self.codec)
        return []

    def _check_rows(self, rows: np.ndarray, within: np.ndarray, what: str) -> np.ndarray:
        if len(rows) and (
            np.any(np.diff(rows) <= 0) or not np.all(np.isin(rows, within, assume_unique=True))
        ):
            raise self._fail(f"{what}: rows not sorted, repeated, or outside the expected set")
        return rows

    def _on_tree(self, message: TreeStart) -> list[Send]:
        if message.tree != self._tree + 1:
            raise self._fail(f"TreeStart for tree {message.tree}")
        self._tree, self._level = message.tree, 0
        train = np.flatnonzero(~self.validation)
        assert self.codec is not None
        if len(message.rows) > self.codec.max_rows:
            raise self._fail("TreeStart with more rows than announced")
        self._rows = self._check_rows(message.rows, train, "TreeStart")
        try:
            self._cts = self.scheme.load(message.cts)
        except ValueError as exc:
            raise self._fail(f"TreeStart: {exc}") from None
        if len(self._cts) != len(self._rows):
            raise self._fail("TreeStart: one ciphertext per row expected")
        self.work["encrypted"] += len(self._cts)
        width = self.bins.shape[1]
        take = max(1, round(width * self.params.colsample)) if width else 0
        chosen = self.rng.choice(width, take, replace=False) if take < width else np.arange(width)
        self._columns = self.rng.permutation(chosen)  # the slot order only this host knows
        return [self._histograms([np.arange(len(self._rows))])]

    def _on_hist_query(self, message: HistQuery) -> list[Send]:
        if message.tree != self._tree or message.level != self._level + 1:
            raise self._fail(f"HistQuery for tree {message.tree}, level {message.level}")
        self._level = message.level
        positions = []
        for rows in message.rows:
            self._check_rows(rows, self._rows, "HistQuery")
            positions.append(np.searchsorted(self._rows, rows))
        return [self._histograms(positions)]

    def _histograms(self, nodes: list[np.ndarray]) -> Send:
        """Encrypted bin sums of each node (positions into this tree's rows); columns on the runtime."""
        cols = self._columns
        workers = max(1, getattr(self.runtime, "workers", 1))
        pieces = [
            c for c in np.array_split(np.arange(len(cols)), min(workers, max(1, len(cols) // 2))) if len(c)
        ]
        union = np.unique(np.concatenate(nodes)) if nodes else np.zeros(0, dtype=np.int64)
        local = [np.searchsorted(union, p) for p in nodes]
        cts = self.scheme.take(self._cts, union)
        row_bins = self.bins[self._rows[union]]
        args = [
            (self.scheme.modulus, cts, np.ascontiguousarray(row_bins[:, cols[piece]]), local, self._n_bins)
            for piece in pieces
        ]
        parts = _tasks.run_chunks(self.runtime, histogram_task, args)
        flat = [part[node] for node in range(len(nodes)) for part in parts]
        self.work["additions"] += sum(len(p) for p in nodes) * len(cols)
        if self.count_multiplications:
            self.work["multiplications"] += multiplications(row_bins[:, cols], local, self._n_bins)
        blob = self.scheme.dump(flat)
        self.work["sums"] += len(blob) // self.scheme.width()
        return Send(self.guest, TO_GUEST, Histograms(self._tree, self._level, len(cols), self._n_bins, blob))

    def _on_split_query(self, message: SplitQuery) -> list[Send]:
        if message.tree != self._tree or message.level != self._level:
            raise self._fail(f"SplitQuery for tree {message.tree}, level {message.level}")
        ids, lefts = [], []
        everyone = np.arange(len(self.bins))
        for slot, bin_, rows in zip(message.slots.tolist(), message.bins.tolist(), message.rows, strict=True):
            if not 0 <= slot < len(self._columns):
                raise self._fail(f"SplitQuery for slot {slot}")
            column = int(self._columns[slot])
            cuts = self.binner.thresholds[column]
            if not 0 <= bin_ < len(cuts):
                raise self._fail(f"SplitQuery for bin {bin_}")
            self._check_rows(rows, everyone, "SplitQuery")
            split_id = int(self.id_rng.integers(0, 2**62))
            while split_id in self.splits:
                split_id = int(self.id_rng.integers(0, 2**62))
            self.splits[split_id] = (self._tree, column, float(cuts[bin_]))
            ids.append(split_id)
            lefts.append(self.bins[rows, column] <= bin_)
        return [
            Send(
                self.guest,
                TO_GUEST,
                SplitAnswer(self._tree, self._level, np.array(ids, dtype=np.int64), lefts),
            )
        ]

    def _on_finish(self, message: Finish) -> list[Send]:
        self.splits = {k: v for k, v in self.splits.items() if v[0] < message.trees}
        self.stage = Stage.DONE
        return []

    # The host's transition table: the guest's message kind -> what the host does with it
    # (Setup first and only first; Finish ends the session).
    _HANDLERS: dict[type, Callable[[HostSession, Any], list[Send]]] = {
        Setup: _on_setup,
        TreeStart: _on_tree,
        HistQuery: _on_hist_query,
        SplitQuery: _on_split_query,
        Finish: _on_finish,
    }
