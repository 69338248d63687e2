"""Private set intersection: ``intersect(ctx, ids, ...)`` over ECDH on Curve25519.

Two parties: each learns the other's set size and, if named in ``reveal_to``, the
intersection; nothing else (``fedcore.psi._protocol`` has the protocol and the argument).

Three or more parties (star): the leader -- the first party of ``reveal_to`` in job order --
runs a two-party PSI with every other party in which only it learns, then sends the
intersection of all sets to the other parties of ``reveal_to``. What each party learns:

* every party: the leader's set size; the leader: every set's size;
* the parties of ``reveal_to``: the intersection of all sets;
* the leader, in addition: the pairwise intersections of its set with each other set
  (this is the price of the star; a ring protocol with multiply-blinded tags would hide it
  at n times the curve operations and is not implemented).

Identifiers are ``str`` or ``int`` (canonically encoded, so "1" and 1 differ); anything else is
refused with ``TypeError``. Duplicates are removed before the protocol (the sizes revealed are
of the deduplicated sets). Empty sets work. Blinding scalars and shuffles come from
``os.urandom``, never from the job-seeded ``ctx.rng``.
"""

from fedcore.psi._driver import BATCH_ITEMS, intersect
from fedcore.psi._ids import decode_id, encode_id
from fedcore.psi._protocol import Blinded, PairSession, Reblind, Reblinded, Send, Stage

__all__ = [
    "BATCH_ITEMS",
    "Blinded",
    "PairSession",
    "Reblind",
    "Reblinded",
    "Send",
    "Stage",
    "decode_id",
    "encode_id",
    "intersect",
]
