"""PSI alignment: every party finds the identifiers all parties share (ECDH-PSI, fedcore.psi).

Each party holds ``size`` string ids: ``overlap`` of them are common to all parties (drawn from
a generator seeded with the job seed, identical everywhere) and the rest are its own (from
``ctx.rng``, with a party-specific prefix so they are disjoint from the common part and from
every other party's). Every party learns the intersection and returns
``{"ids_count": size, "intersection": [sorted ids]}``.
"""

import numpy as np

from fedcore import Context
from fedcore.errors import ConfigError
from fedcore.psi import intersect


def party_ids(seed: int, party: str, rng: np.random.Generator, size: int, overlap: int) -> list[str]:
    """The ids of ``party``: the shared ``overlap`` ones and ``size - overlap`` of its own, shuffled."""
    common_rng = np.random.default_rng(seed)
    common = [f"c-{v:016x}" for v in common_rng.choice(2**62, size=overlap, replace=False)]
    own = [f"{party}-{v:016x}" for v in rng.choice(2**62, size=size - overlap, replace=False)]
    ids = common + own
    return [ids[i] for i in rng.permutation(len(ids))]


def main(ctx: Context, size: int = 1000, overlap: int = 100) -> dict:
    size, overlap = int(size), int(overlap)
    if not 0 <= overlap <= size:
        raise ConfigError(f"psi_align needs 0 <= overlap <= size, got size={size} overlap={overlap}")
    ids = party_ids(ctx.seed, ctx.party, ctx.rng, size, overlap)
    ctx.progress(step="psi")
    common = intersect(ctx, ids)
    return {"ids_count": size, "intersection": sorted(common or [])}
