"""Subcommands of the ``fedcore`` CLI; each module has ``add_parser(subparsers)``."""
