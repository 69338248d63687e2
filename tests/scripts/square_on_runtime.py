"""A protocol script whose local tasks are functions defined in the script itself."""


def square(x: int) -> int:
    return x * x


def explode(x: int) -> int:
    raise ValueError(f"task {x} exploded")


def main(ctx, n: int = 4) -> dict:
    return {"squares": ctx.runtime.map(square, range(n))}
