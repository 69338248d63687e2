"""Plain sum: the first party gathers every party's vector and adds them up.

The smallest protocol script, and the reference the secure sum is checked against.
Every party returns {"input": vector}; the first also returns "sum".
"""

import numpy as np

from fedcore import Context


def main(ctx: Context, dim: int = 10) -> dict:
    vector = ctx.rng.normal(size=dim)
    leader = ctx.parties[0]
    if ctx.party != leader:
        ctx.progress(step="send")
        ctx.send(leader, "input", vector)
        return {"input": vector}
    ctx.progress(step="gather")
    inputs = ctx.gather("input")
    total = vector + np.sum(list(inputs.values()), axis=0) if inputs else vector.copy()
    return {"input": vector, "sum": total}
