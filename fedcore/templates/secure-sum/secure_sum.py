"""Secure sum: the first party learns the total of every party's local counts, and nothing else.

Each party's input stays with it; SecAgg+ masks cancel only in the sum (fedcore.secagg), and
the sum survives parties that drop out mid-round. Replace ``local_counts`` with your data.

    fedcore simulate secure_sum.py --parties 5 --json
"""

from typing import Any

import numpy as np

from fedcore import Context
from fedcore.secagg import secure_sum


def local_counts(ctx: Context, bins: int) -> np.ndarray:
    """This party's histogram of a local quantity (here: seeded random draws)."""
    values = ctx.rng.normal(size=1000)
    return np.histogram(values, bins=bins, range=(-3, 3))[0].astype(np.int64)


def main(ctx: Context, bins: int = 12) -> dict[str, Any]:
    counts = local_counts(ctx, int(bins))
    aggregator = ctx.parties[0]
    result = secure_sum(ctx, counts, aggregator=aggregator)
    if ctx.party != aggregator:
        return {"contributed": int(counts.sum())}
    return {"total": np.asarray(result.total).tolist(), "included": list(result.included)}
