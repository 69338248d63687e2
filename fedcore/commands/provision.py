"""``fedcore provision``: write the kit, renew one party's certificate, rotate the federation CA.

Three forms share the subcommand; the first positional word tells them apart, so the original
form is unchanged::

    fedcore provision FEDERATION.toml --out DIR [--force] [--protocols DIR]
    fedcore provision renew KIT_DIR --party ID [--valid-days N]
    fedcore provision rotate-ca KIT_DIR [--valid-days N] | --finish
    fedcore provision revoke ID [--kit KIT_DIR]     (or: revoke KIT_DIR --party ID)

(A federation file literally named ``renew`` or ``rotate-ca`` still works as ``./renew``, or
as ``renew --out DIR`` with no KIT_DIR.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedcore.errors import ConfigError

ACTIONS = ("renew", "rotate-ca", "revoke")
USAGE = """fedcore provision FEDERATION.toml --out DIR [--force] [--protocols DIR]
       fedcore provision renew KIT_DIR --party ID [--valid-days N]
       fedcore provision rotate-ca KIT_DIR [--valid-days N]
       fedcore provision rotate-ca KIT_DIR --finish
       fedcore provision revoke ID [--kit KIT_DIR]"""


def default_protocols() -> Path:
    """The repository's ``protocols/`` folder (next to the fedcore package), else ``./protocols``."""
    import fedcore

    beside = Path(fedcore.__file__).resolve().parent.parent / "protocols"
    return beside if beside.is_dir() else Path.cwd() / "protocols"


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"expected a number of days 1-36500, got {raw!r}")
    return days


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "provision",
        usage=USAGE,
        help="make the CA and each party's kit; renew a certificate; rotate the CA; revoke a party",
        description="Write a federation's startup kit, renew one party's certificate from the kit's CA, "
        "or rotate the CA (run renew and rotate-ca where DIR/ca/ca.key is kept).",
    )
    p.add_argument(
        "federation",
        metavar="FEDERATION.toml | renew | rotate-ca | revoke",
        help="federation.toml (federation name and [[party]] tables), or an action on a kit",
    )
    p.add_argument(
        "kit",
        nargs="?",
        metavar="KIT_DIR | ID",
        help="the kit folder (renew, rotate-ca), or the party id to revoke (revoke)",
    )
    p.add_argument(
        "--kit",
        dest="kit_dir",
        metavar="KIT_DIR",
        help="revoke: the kit whose parties' party.toml get the revocation (default: .)",
    )
    p.add_argument("--out", metavar="DIR", help="kit folder to write (DIR/ca and DIR/<party>)")
    p.add_argument("--force", action="store_true", help="replace an existing kit")
    p.add_argument(
        "--control",
        choices=("unix", "tcp"),
        default="unix",
        help="operator API: unix socket control.sock, mode 0600 (default), or loopback TCP on "
        "control_port with the token in operator.token (containers)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="each party's writable state folder (job store, job folders, and the unix socket); "
        "{party} is replaced by the party id (default: state/ beside party.toml)",
    )
    p.add_argument(
        "--protocols",
        metavar="DIR",
        help="folder of allowed protocol scripts written into each party's [policy] scripts "
        "as an absolute path (default: the repository's protocols/)",
    )
    p.add_argument(
        "--party",
        metavar="ID",
        help="renew: the party whose certificate and key to reissue; revoke: the party to revoke",
    )
    p.add_argument(
        "--valid-days",
        type=_days,
        metavar="N",
        help="renew, rotate-ca: validity of the new party certificates (default 825)",
    )
    p.add_argument(
        "--finish",
        action="store_true",
        help="rotate-ca: end the rotation, leaving only the new CA in every ca.pem",
    )
    p.set_defaults(func=run, provision_parser=p)


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.provision_parser
    if args.federation in ACTIONS and (args.kit is not None or args.out is None):
        return _kit_action(args, parser)
    given = [
        f
        for f, v in (
            ("KIT_DIR", args.kit),
            ("--party", args.party),
            ("--valid-days", args.valid_days),
            ("--finish", args.finish),
        )
        if v
    ]
    if args.out is None:
        parser.error("the following arguments are required: --out")
    if given:
        parser.error(f"{', '.join(given)} not allowed when writing a kit (only with renew or rotate-ca)")
    return _provision(args)


def _provision(args: argparse.Namespace) -> int:
    from fedcore.party.provision import load_federation, provision

    spec = load_federation(args.federation)
    protocols = Path(args.protocols) if args.protocols else default_protocols()
    if not protocols.is_dir():
        raise ConfigError(f"no protocols folder at {protocols}: pass --protocols DIR")
    configs = provision(
        spec,
        Path(args.out),
        protocols=protocols,
        force=args.force,
        control=args.control,
        state_dir=args.state_dir,
    )
    out = Path(args.out).resolve()
    sys.stdout.write(f"federation {spec.federation}: CA in {out / 'ca'} (keep ca.key offline)\n")
    for config in configs:
        sys.stdout.write(f"  {config.parent.name}: fedcore party serve {config}\n")
    return 0


def _kit_action(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    action = args.federation
    kit_options = (("--out", args.out), ("--force", args.force), ("--protocols", args.protocols))
    wrong = [flag for flag, value in kit_options if value]
    if action == "revoke":
        return _revoke(args, parser, wrong)
    if args.kit_dir:
        wrong.append("--kit")
    if action == "renew":
        wrong += ["--finish"] if args.finish else []
        if not args.party:
            parser.error("renew: the following arguments are required: --party")
    elif args.party:
        wrong.append("--party")
    if args.finish and args.valid_days:
        wrong.append("--valid-days (with --finish)")
    if args.kit is None:
        parser.error(f"{action}: the following arguments are required: KIT_DIR")
    if wrong:
        parser.error(f"{action}: {', '.join(wrong)} not allowed here")
    kit = Path(args.kit).resolve()
    if action == "renew":
        return _renew(kit, args.party, args.valid_days)
    return _finish(kit) if args.finish else _rotate(kit, args.valid_days)


def _renew(kit: Path, party: str, valid_days: int | None) -> int:
    from fedcore.party.provision import PARTY_VALID_DAYS
    from fedcore.party.rotation import renew

    expires = renew(kit, party, valid_days=valid_days or PARTY_VALID_DAYS)
    sys.stdout.write(
        f"{party}: new certificate and key in {kit / party} (expires {expires.isoformat()}); "
        f"check it with fedcore party check {kit / party / 'party.toml'}, install party.pem, party.key "
        "and ca.pem at the party, then restart its daemon when no job runs\n"
    )
    return 0


def _revoke(args: argparse.Namespace, parser: argparse.ArgumentParser, wrong: list[str]) -> int:
    from fedcore.party.revocation import revoke

    wrong += [f for f, v in (("--finish", args.finish), ("--valid-days", args.valid_days)) if v]
    if args.party:  # the renew-like form: revoke KIT_DIR --party ID
        kit, party = args.kit, args.party
        wrong += ["--kit (with KIT_DIR --party ID)"] if args.kit_dir else []
    else:
        kit, party = args.kit_dir or ".", args.kit
    if not party:
        parser.error("revoke: the following arguments are required: ID")
    if wrong:
        parser.error(f"revoke: {', '.join(wrong)} not allowed here")
    serial, told = revoke(Path(kit), party)
    which = f"{party} (certificate serial {serial:#x})" if serial is not None else f"party id {party}"
    sys.stdout.write(
        f"revoked {which} in the party.toml of {', '.join(told)} ([revocation]); install each "
        "party.toml at its party and restart its daemon: from then on it refuses that certificate; "
        f"check with fedcore party check {Path(kit).resolve() / told[0] / 'party.toml'}\n"
    )
    return 0


def _rotate(kit: Path, valid_days: int | None) -> int:
    from fedcore.party.provision import PARTY_VALID_DAYS
    from fedcore.party.rotation import rotate_ca

    parties = rotate_ca(kit, valid_days=valid_days or PARTY_VALID_DAYS)
    sys.stdout.write(
        f"new CA in {kit / 'ca'} (the old one is ca/previous.pem until --finish); "
        f"rewrote {', '.join(parties)}: ca.pem (new + old CA), party.pem, party.key\n"
        "  1. install every party's new ca.pem and restart it (all parties then accept both CAs)\n"
        "  2. then install each party's party.pem and party.key and restart it\n"
        f"  3. then run: fedcore provision rotate-ca {kit} --finish\n"
    )
    return 0


def _finish(kit: Path) -> int:
    from fedcore.party.rotation import finish_rotation

    parties = finish_rotation(kit)
    sys.stdout.write(
        f"CA rotation finished in {kit / 'ca'}: the old CA is gone; {', '.join(parties)}: "
        "ca.pem holds only the new CA; install it at each party and restart it\n"
    )
    return 0
