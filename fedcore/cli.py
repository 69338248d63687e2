"""The ``fedcore`` command: one subcommand per module in ``fedcore.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from fedcore.errors import ConfigError, FedcoreError

# Each module defines add_parser(subparsers); missing ones are features not built yet.
COMMANDS = ("simulate", "bench", "provision", "party", "job", "new")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedcore", description="federated, privacy-preserving compute")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"fedcore.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fedcore.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"fedcore: error: {exc}", file=sys.stderr)
        return 2
    except FedcoreError as exc:
        print(f"fedcore: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and friends: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("fedcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
