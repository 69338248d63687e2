"""Test protocol: every party waits at step "waiting" for a message that never comes.

The first parties wait on the last one, the last on the first, so killing the last party's
daemon must fail the others with PartyDropped naming it (detected by heartbeat).
"""

from fedcore import Context


def main(ctx: Context, wait_s: float = 60.0) -> dict:
    ctx.progress(step="waiting")
    last = ctx.parties[-1]
    source = last if ctx.party != last else ctx.parties[0]
    ctx.recv(source, "never", timeout=wait_s)
    return {"unexpected": True}
