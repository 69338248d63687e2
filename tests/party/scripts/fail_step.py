"""Test protocol: bob raises at step "boom"; the others wait for bob and must fail fast naming him."""

from fedcore import Context


def main(ctx: Context) -> dict:
    ctx.progress(step="boom")
    if ctx.party == "bob":
        raise ValueError("bob's script failed on purpose")
    ctx.recv("bob", "never", timeout=60)
    return {"unexpected": True}
