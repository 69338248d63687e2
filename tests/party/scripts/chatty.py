"""Test protocol: the first two parties trade a message every ``pause_s`` for ``rounds`` rounds."""

import time

from fedcore import Context


def main(ctx: Context, rounds: int = 10, pause_s: float = 0.3) -> dict:
    other = ctx.parties[1] if ctx.party == ctx.parties[0] else ctx.parties[0]
    got = []
    for i in range(rounds):
        ctx.progress(step=f"round-{i}")
        ctx.send(other, f"r{i}", i)
        got.append(int(ctx.recv(other, f"r{i}", timeout=30)))
        time.sleep(pause_s)
    return {"got": got}
