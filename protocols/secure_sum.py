"""Secure sum: the first party learns the sum of every party's vector through SecAgg+, nothing else.

The same contract as plain_sum.py, so one checker serves both: each party draws its input from
ctx.rng before any message; every party returns {"input": vector}; the first party (the
aggregator) also returns "sum" and "included", the parties whose inputs the sum contains.
Inputs are standard normal, so value_range=8 (|x| > 8 has probability about 1e-15 per value).
"""

import numpy as np

from fedcore import Context
from fedcore.secagg import secure_sum


def main(ctx: Context, dim: int = 10) -> dict:
    vector = ctx.rng.normal(size=int(dim))
    aggregator = ctx.parties[0]
    result = secure_sum(ctx, vector, aggregator=aggregator, value_range=8.0)
    if ctx.party != aggregator:
        return {"input": vector}
    return {"input": vector, "sum": np.asarray(result.total), "included": list(result.included)}
