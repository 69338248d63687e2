"""Test protocol: the first two parties trade a message every ``pause_s`` for ``rounds`` rounds.

With ``quiet`` they report no progress, so the initiator's long polls of the other party wait
their full length (and a link that resets often cuts every one of them).
"""

import time

from fedcore import Context


def main(ctx: Context, rounds: int = 10, pause_s: float = 0.3, quiet: bool = False) -> dict:
    other = ctx.parties[1] if ctx.party == ctx.parties[0] else ctx.parties[0]
    got = []
    for i in range(rounds):
        if not quiet:
            ctx.progress(step=f"round-{i}")
        ctx.send(other, f"r{i}", i)
        got.append(int(ctx.recv(other, f"r{i}", timeout=30)))
        time.sleep(pause_s)
    return {"got": got}
