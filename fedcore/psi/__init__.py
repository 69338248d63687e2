"""Private set intersection: ``intersect(ctx, ids, ...)`` over ECDH on Curve25519.

Two parties: each learns the other's set size and, if named in ``reveal_to``, the
intersection; nothing else (``fedcore.psi._protocol`` has the protocol and the argument).

Three or more parties (ring, ``fedcore.psi._ring``): the leader is the first party of
``reveal_to`` in job order and the comparer the next party of the ring. Every set is blinded
by every party's key as it travels around the ring, shuffled at each hop; the comparer
intersects the non-leaders' fully blinded tags, the leader matches its own against them and
sends the intersection to the other parties of ``reveal_to``. What each party learns:

* every party: the size of every set;
* the parties of ``reveal_to``: the intersection of all sets;
* the leader, in addition: the size of the intersection of the non-leaders' sets;
* the comparer, in addition: the sizes of the intersections among the non-leaders' sets
  (never which items: every tag reaches it shuffled by other parties).

No party learns which items lie in a pairwise (rather than the full) intersection. This
holds without collusion; two colluding parties can learn more.

Identifiers are ``str`` or ``int`` (canonically encoded, so "1" and 1 differ); anything else is
refused with ``TypeError``. Duplicates are removed before the protocol (the sizes revealed are
of the deduplicated sets). Empty sets work. Blinding scalars and shuffles come from
``os.urandom``, never from the job-seeded ``ctx.rng``.
"""

from fedcore.psi._driver import BATCH_ITEMS, intersect
from fedcore.psi._ids import decode_id, encode_id
from fedcore.psi._protocol import Blinded, PairSession, Reblind, Reblinded, Stage
from fedcore.psi._ring import Common, Hop, RingSession, RingStage, Tags
from fedcore.session import Send  # the one action type of every protocol (fedcore.session)

__all__ = [
    "BATCH_ITEMS",
    "Blinded",
    "Common",
    "Hop",
    "PairSession",
    "Reblind",
    "Reblinded",
    "RingSession",
    "RingStage",
    "Send",
    "Stage",
    "Tags",
    "decode_id",
    "encode_id",
    "intersect",
]
