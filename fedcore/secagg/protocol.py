"""SecAgg+: secure summation with dropout recovery — stages, messages and the round's public setup.

Theory of operation
===================

This is the protocol of Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
Machine Learning" (CCS 2017, section 4: rounds 0 AdvertiseKeys, 1 ShareKeys, 2 MaskedInputCollection
and 4 Unmasking; round 3, the signed consistency check of the actively secure variant, is not
implemented), with the sparse communication graph of Bell et al., "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead" (CCS 2020, "SecAgg+"): each client shares keys and
masks only with k = O(log n) neighbours instead of all n - 1.

One party is the *aggregator* (the paper's server); the others are *clients*. The aggregator
learns the sum of the surviving clients' vectors (and adds its own vector in the clear); it
never holds an unmasked client vector.

Setup (public, computed identically by every party, ``RoundSetup``): the ordered client list,
the neighbour graph G (complete, or a random k-regular graph: the Harary graph H(k, n) under a
public random relabelling drawn from a seed hashed from job, round, job seed and party list, as
Flower's SecAgg+ also builds it; by default k = 2*ceil(2*log2 n) is our conservative choice of the O(log n)
degree, not a bound computed from Bell et al.'s formulas for given dropout/corruption rates), the
Shamir threshold t (default ceil(2h/3) for h = k + 1 share holders per client, always > h/2)
and the fixed-point ring encoding (``fedcore.crypto.fixedpoint``). H(u) = N(u) + {u} holds u's
shares; holder v uses x-coordinate index(v) + 1. Pairwise sign: u adds PRG(s_uv) if u comes
before v in the client list, subtracts it otherwise, so the pairwise masks cancel in the sum.

Stages (``Stage``), who sends what (every message carries the round id; tags are per round):

1. ADVERTISE_KEYS: client u -> aggregator ``Advertise(c_pk, s_pk, setup digest)``: two fresh
   X25519 public keys (c: encryption, s: masking). The aggregator keeps U1 (those that
   answered in time with the right setup digest) and sends u ``PeerKeys``: the keys of
   N(u) in U1.
2. SHARE_KEYS: u draws a self-mask seed b_u (32 random bytes), Shamir-shares b_u and s_u's
   private key among H(u) with threshold t, and sends ``SealedShares``: for each neighbour v,
   AEAD(key = HKDF(X25519(c_u, c_v)), shares of v, bound to job, round, u, v, stage). The
   aggregator keeps U2 and forwards each v ``ForwardedShares`` (the ciphertexts sealed to v by
   its neighbours in U2). It cannot read them.
3. MASKED_INPUT: u sends ``MaskedInput``: y_u = x_u + PRG(b_u) + sum_{v in N(u) & U2} ±PRG(s_uv),
   s_uv = HKDF(X25519(s_u, s_v)), all in Z_{2^k}. The aggregator keeps U3 and adds the y_u.
4. UNMASKING: the aggregator sends each u in U3 ``Survivors(U3 & H(u))``: the survivors among
   the clients whose shares u holds (all it needs, and O(k) names, not O(n): with every client
   given all of U3 a 10,000-client round decoded 10^8 names). u checks that at least t of them
   survived (fewer, and its own b_u could not be rebuilt) and answers ``UnmaskShares``:
   for each v in H(u) & U2, the share of b_v if v is in U3, else the share of s_v's private
   key — never both for one v (the double-masking rule: a client declared dropped, even one
   whose masked input arrives late, never has its b reconstructed, so its y stays masked).
   The aggregator (U4: those that answered) rebuilds b_u for u in U3 and s_v for dropped v,
   removes PRG(b_u) and the dangling pairwise masks ±PRG(s_uv), adds its own vector and sends
   ``Outcome(included, total or None)``; ``total`` only with reveal="all".

Dropouts and failure: a client missing at a stage (crashed: its transport reports it at once;
late: the stage deadline passes) is left out from then on and, if still listening, told so with
``Abort`` (it raises ``PartyDropped``). If fewer than t clients remain at any stage, or some
needed secret has fewer than t shares in U4, the round fails: every remaining client gets
``Abort(lost=...)`` and raises ``PartyDropped(lost=...)``, as does the aggregator; nothing was
unmasked. If the aggregator dies, every client's wait raises ``PartyDropped`` at once.

What a dishonest or silent party can and cannot do: a silent client only removes itself. A
curious aggregator sees only uniformly masked y_u, ciphertexts and fewer than t shares of any
secret it must not know. Even if it tells different clients different survivor lists, each
honest holder answers one list and reveals one kind of share per v, and t > h/2, so it cannot
collect t shares of both b_v and s_v. What this variant does not stop (the paper's actively
secure version does, with signatures under a PKI and the round-3 consistency check): an
aggregator that substitutes public keys in ``PeerKeys`` or invents clients (it relays all keys,
unauthenticated), and so can learn inputs; it is secure against an honest-but-curious
aggregator. Clients check what they can: survivor lists must be at least t long and name only
neighbours that shared keys with them. A malicious client can make the sum wrong (no input
validation, no share verification for b) or make the round fail.

Choosing the degree (``neighbours=K``)
=====================================

By default k = 2*ceil(2*log2 n) (28 for 99 clients). ``secure_sum(..., neighbours=K)`` sets it:
each client then runs K key agreements per key pair, expands K + 1 masks and splits its two
secrets among h = K + 1 holders (K + 2 for one client when K and n are both odd), so a round
costs about K/k of the default's; Flower's ``num_shares=s`` is the ring with s - 1 neighbours
for odd s (its default 3 shares is ``neighbours=2``). The threshold stays ceil(2h/3) (always a
strict majority of the holders: ``neighbours=2`` gives t = 2 of 3, ``neighbours=3`` t = 3 of 4).
What a smaller K gives up, against the same honest-but-curious aggregator:

- dropout tolerance per client: at most h - t of its holders may drop (1 for K = 2 or 3, 10 for
  the default 28); more and the round fails (nothing is unmasked);
- the size of what is revealed: the aggregator learns the sum of each connected part of the
  surviving clients' graph, not only the total. On the default O(log n) graph, dropouts split it
  with negligible probability (Bell et al.); on a ring (K = 2) any two non-adjacent dropouts
  split it and reveal the partial sums of the arcs between them;
- collusion: a client whose K neighbours all collude with the aggregator (they hold every
  pairwise seed it used) loses its privacy; that takes K colluders, so 2 or 3 is a weak bound.

All messages (``fedcore.secagg.messages``) are frozen dataclasses validated when built (also
when decoded from the wire), and the session classes (``ClientSession``, ``AggregatorSession``)
are sans-I/O: message in, messages out; randomness is passed in; the driver in
``fedcore.secagg.driver`` does the I/O.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import math
import threading
from dataclasses import dataclass, field

import numpy as np

from fedcore.crypto.fixedpoint import RingEncoding
from fedcore.errors import ConfigError


class Stage(enum.Enum):
    """The protocol's stages, in order (Bonawitz et al. 2017 rounds 0, 1, 2, 4), then the two ends."""

    ADVERTISE_KEYS = 1
    SHARE_KEYS = 2
    MASKED_INPUT = 3
    UNMASKING = 4
    DONE = 5
    FAILED = 6


class Graph(enum.StrEnum):
    """The neighbour graph: ``sparse`` (Harary, O(log n) degree), ``complete``, or ``auto``
    (sparse once the clients outnumber three times the degree)."""

    AUTO = "auto"
    COMPLETE = "complete"
    SPARSE = "sparse"


class Reveal(enum.StrEnum):
    """Who learns the total: the ``aggregator`` only, or ``all`` the parties (in ``Outcome``)."""

    AGGREGATOR = "aggregator"
    ALL = "all"


GRAPHS = tuple(Graph)
REVEALS = tuple(Reveal)


def sparse_degree(clients: int) -> int:
    """Degree k of the SecAgg+ graph: 2 * ceil(2 * log2 n) (even, O(log n) as in Bell et al.)."""
    return 2 * math.ceil(2 * math.log2(max(clients, 2)))


def default_threshold(holders: int) -> int:
    """ceil(2h/3) for h share holders: a strict majority, tolerating h - t dropouts."""
    return max(1, math.ceil(2 * holders / 3))


@dataclass(frozen=True)
class RoundSetup:
    """The public parameters of one round, the same at every party."""

    job: str
    round_id: str
    aggregator: str
    clients: tuple[str, ...]
    neighbours: dict[str, tuple[str, ...]] = field(repr=False)
    threshold: int
    dim: int
    encoding: RingEncoding
    reveal: Reveal

    def index(self, client: str) -> int:
        return self._index[client]

    def x_coordinate(self, client: str) -> int:
        return self._index[client] + 1

    def holders(self, client: str) -> tuple[str, ...]:
        """H(u): the neighbours of u and u itself, in client order."""
        return self._holders[client]

    @functools.cached_property
    def _holders(self) -> dict[str, tuple[str, ...]]:
        return {c: tuple(sorted((*nbrs, c), key=self.index)) for c, nbrs in self.neighbours.items()}

    def sign(self, u: str, v: str) -> int:
        """+1 if u adds the u-v pairwise mask, -1 if it subtracts it."""
        return 1 if self._index[u] < self._index[v] else -1

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.clients)}

    def digest(self) -> bytes:
        return self._digest

    @functools.cached_property
    def _digest(self) -> bytes:
        """SHA-256 of the public parameters: parties with different setups refuse each other."""
        text = repr(
            (
                self.job,
                self.round_id,
                self.aggregator,
                self.clients,
                self.threshold,
                self.dim,
                self.encoding.as_tuple(),
                str(self.reveal),  # the plain string: the digest is on the wire
                sorted(self.neighbours.items()),
            )
        )
        return hashlib.sha256(text.encode()).digest()

    def salt(self) -> bytes:
        return self._salt

    @functools.cached_property
    def _salt(self) -> bytes:
        return hashlib.sha256(f"fedcore-secagg-v1|{self.job}|{self.round_id}".encode()).digest()


def make_setup(
    *,
    job: str,
    round_id: str,
    seed: int,
    aggregator: str,
    parties: tuple[str, ...],
    dim: int,
    encoding: RingEncoding,
    threshold: int | None = None,
    graph: Graph | str = Graph.AUTO,
    reveal: Reveal | str = Reveal.AGGREGATOR,
    neighbours: int | None = None,
) -> RoundSetup:
    """Build the round's public setup from the public arguments.

    ``neighbours=K`` picks the graph's degree instead of the default 2*ceil(2*log2 n): a Harary
    graph H(K, n) (for odd K on an odd number of clients one client has K + 1 neighbours); K
    at or above n - 1 gives the complete graph. See "Choosing the degree" above for what K buys.

    The result depends only on the arguments, so it is cached: in a simulation the parties of
    one process share one (immutable) setup instead of each building the graph again.

    Raises:
        ConfigError: unknown graph or reveal, aggregator not a party, a threshold that is not
            a strict majority of the share holders.
    """
    with _SETUP_LOCK:  # else parties released together by a barrier all build the same graph
        return _make_setup(
            job,
            round_id,
            seed,
            aggregator,
            tuple(parties),
            dim,
            encoding,
            threshold,
            graph,
            reveal,
            neighbours,
        )


_SETUP_LOCK = threading.Lock()


@functools.lru_cache(maxsize=16)
def _make_setup(
    job: str,
    round_id: str,
    seed: int,
    aggregator: str,
    parties: tuple[str, ...],
    dim: int,
    encoding: RingEncoding,
    threshold: int | None,
    graph_name: str,
    reveal_name: str,
    neighbours: int | None = None,
) -> RoundSetup:
    if graph_name not in GRAPHS or reveal_name not in REVEALS:
        raise ConfigError(
            f"graph is one of {', '.join(GRAPHS)} and reveal one of {', '.join(REVEALS)}; "
            f"got {graph_name!r}, {reveal_name!r}"
        )
    graph, reveal = Graph(graph_name), Reveal(reveal_name)
    if aggregator not in parties or len(set(parties)) != len(parties):
        raise ConfigError(f"aggregator {aggregator!r} must be one of the (distinct) parties")
    clients = tuple(p for p in parties if p != aggregator)
    if not clients:
        raise ConfigError("secure_sum needs at least one client besides the aggregator")
    n = len(clients)
    k = _degree(n, graph, neighbours)
    chosen = neighbours is not None or graph is Graph.SPARSE
    sparse = k < n - 1 and (chosen or (graph is Graph.AUTO and n > 3 * k))
    neighbours_of = (
        _harary(clients, k, _graph_seed(job, round_id, seed, parties))
        if sparse
        else {c: tuple(o for o in clients if o != c) for c in clients}
    )
    sizes = [len(v) + 1 for v in neighbours_of.values()]
    fewest, most = min(sizes), max(sizes)  # differ by one only for odd K on an odd number of clients
    t = default_threshold(fewest) if threshold is None else threshold
    if type(t) is not int or not most / 2 < t <= fewest:
        raise ConfigError(
            f"threshold must be a strict majority of the {most} share holders per client and at most "
            f"{fewest} ({most // 2 + 1}..{fewest}), got {threshold!r}"
        )
    return RoundSetup(job, round_id, aggregator, clients, neighbours_of, t, dim, encoding, reveal)


def _degree(n: int, graph: Graph, neighbours: int | None) -> int:
    if neighbours is None:
        return sparse_degree(n)
    if type(neighbours) is not int or neighbours < 2:
        raise ConfigError(f"neighbours must be an integer of at least 2, got {neighbours!r}")
    if graph is Graph.COMPLETE and neighbours < n - 1:
        raise ConfigError(
            f"graph='complete' gives every client {n - 1} neighbours; drop neighbours={neighbours}"
        )
    return min(neighbours, n - 1)


def _graph_seed(job: str, round_id: str, seed: int, parties: tuple[str, ...]) -> int:
    text = repr(("fedcore-secagg-graph", job, round_id, seed, parties))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")


def _harary(clients: tuple[str, ...], k: int, seed: int) -> dict[str, tuple[str, ...]]:
    """Random k-regular graph: the Harary graph H(k, n) on a public random relabelling.

    Slot s is joined to s +- 1 .. s +- k//2; for odd k also to its opposite slot s + n//2, for
    s = 0 .. n//2 (Harary's construction: with n odd, one slot gets a second opposite, k + 1).
    """
    n = len(clients)
    order = np.random.default_rng(seed).permutation(n)
    slots: list[set[int]] = [{(s + d) % n for d in range(-(k // 2), k // 2 + 1) if d} for s in range(n)]
    if k % 2:
        for s in range(n // 2 + 1 if n % 2 else n // 2):
            slots[s].add((s + n // 2) % n)
            slots[(s + n // 2) % n].add(s)
    position = {int(node): slot for slot, node in enumerate(order)}
    result = {}
    for i, c in enumerate(clients):
        nbrs = {int(order[j]) for j in slots[position[i]]}
        result[c] = tuple(clients[j] for j in sorted(nbrs))
    return result
