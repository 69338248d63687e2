"""``fedcore provision FEDERATION.toml --out DIR``: write one startup kit per party plus the CA."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedcore.errors import ConfigError


def default_protocols() -> Path:
    """The repository's ``protocols/`` folder (next to the fedcore package), else ``./protocols``."""
    import fedcore

    beside = Path(fedcore.__file__).resolve().parent.parent / "protocols"
    return beside if beside.is_dir() else Path.cwd() / "protocols"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("provision", help="make the CA and each party's kit from a federation file")
    p.add_argument("federation", help="federation.toml (federation name and [[party]] tables)")
    p.add_argument("--out", required=True, help="kit folder to write (DIR/ca and DIR/<party>)")
    p.add_argument("--force", action="store_true", help="replace an existing kit")
    p.add_argument("--protocols", help="folder of allowed protocol scripts written into each party's "
                                       "[policy] scripts as an absolute path (default: the repository's "
                                       "protocols/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fedcore.party.provision import load_federation, provision

    spec = load_federation(args.federation)
    protocols = Path(args.protocols) if args.protocols else default_protocols()
    if not protocols.is_dir():
        raise ConfigError(f"no protocols folder at {protocols}: pass --protocols DIR")
    configs = provision(spec, Path(args.out), protocols=protocols, force=args.force)
    out = Path(args.out).resolve()
    sys.stdout.write(f"federation {spec.federation}: CA in {out / 'ca'} (keep ca.key offline)\n")
    for config in configs:
        sys.stdout.write(f"  {config.parent.name}: fedcore party serve {config}\n")
    return 0
