"""``fedcore party check|serve|status CONFIG``: validate, run and inspect a party daemon."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from fedcore.commands._common import print_json


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("party", help="check, serve or inspect a party daemon")
    psub = p.add_subparsers(dest="party_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate a party.toml and its files; --peers dials every peer")
    _config(check)
    check.add_argument("--peers", action="store_true", help="also dial every peer over mTLS")
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    check.set_defaults(func=run_check)
    serve = psub.add_parser("serve", help="run the party daemon until SIGTERM")
    _config(serve)
    serve.set_defaults(func=run_serve)
    status = psub.add_parser("status", help="ask the running daemon: peers, certificate, jobs")
    _config(status)
    status.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    status.set_defaults(func=run_status)


def _config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="the party's party.toml (or --config; default $FEDCORE_CONFIG, else ./party.toml)",
    )
    p.add_argument("--config", dest="config_flag", default=None, metavar="CONFIG", help="the same, as a flag")


def _resolve(args: argparse.Namespace) -> str:
    return str(args.config or args.config_flag or os.environ.get("FEDCORE_CONFIG", "party.toml"))


def run_check(args: argparse.Namespace) -> int:
    from fedcore.party.config import load_config
    from fedcore.party.tlscheck import verify_tls

    config = load_config(_resolve(args))
    info = verify_tls(config)
    report: dict[str, Any] = {
        "party": config.party_id,
        "federation": config.federation,
        "config": str(config.path),
        "certificate": {
            "not_after": info["not_after"],
            "days_left": info["days_left"],
            "trusted_cas": info.get("trusted_cas", []),
        },
        "revoked": {
            "ids": list(config.revocation.ids),
            "serials": [f"{s:#x}" for s in config.revocation.serials],
        },
    }
    if args.peers:
        report["peers"] = _check_peers(config)
    peers = report.get("peers", [])
    ok = all(p["reachable"] and p["tls_verified"] and p["identity"] == p["peer"] for p in peers)
    if args.json:
        print_json({**report, "ok": ok})
    else:
        _print_check(report)
    return 0 if ok else 1


def _check_peers(config: Any) -> list[dict[str, Any]]:
    from fedcore.party.daemon import make_node, peer_check_dict

    def no_control(src: str, kind: str, body: bytes) -> bytes:
        raise RuntimeError("party check serves no requests")

    logging.getLogger("fedcore.transport").setLevel(logging.WARNING)  # keep the report readable
    node = make_node(config, no_control, listen="127.0.0.1:0")  # dials only; never bound
    try:
        return [peer_check_dict(node.check_peer(peer, timeout_s=5.0)) for peer in config.peers]
    finally:
        node.stop(0.5)


def _print_check(report: dict[str, Any]) -> None:
    out = sys.stdout
    cert = report["certificate"]
    out.write(
        f"{report['party']} ({report['federation']}): config and TLS files OK; certificate "
        f"expires {cert['not_after']} ({cert['days_left']} days left)\n"
    )
    trusted = cert.get("trusted_cas", [])
    if len(trusted) > 1:  # a CA rotation is in progress: say which CAs this party accepts
        out.write(f"  trusts {len(trusted)} CAs (rotation in progress): {', '.join(map(str, trusted))}\n")
    revoked = report["revoked"]
    if revoked["ids"] or revoked["serials"]:
        out.write(
            f"  revoked (refused on the peer port): ids {', '.join(revoked['ids']) or '-'}; "
            f"certificate serials {', '.join(revoked['serials']) or '-'}\n"
        )
    for p in report.get("peers", []):
        reach = "reachable" if p["reachable"] else "UNREACHABLE"
        tls = "TLS verified" if p["tls_verified"] else "TLS NOT verified"
        ident = p["identity"] or "-"
        mismatch = "" if p["identity"] in (None, p["peer"]) else f" (expected {p['peer']}!)"
        why = f": {p['error']}" if p.get("error") else ""
        out.write(f"  {p['peer']} at {p['address']}: {reach}, {tls}, identity {ident}{mismatch}{why}\n")


def run_serve(args: argparse.Namespace) -> int:
    from fedcore.party.config import load_config
    from fedcore.party.daemon import PartyDaemon

    return PartyDaemon(load_config(_resolve(args))).serve()


def run_status(args: argparse.Namespace) -> int:
    from fedcore.party.client import ApiClient
    from fedcore.party.config import load_config

    with ApiClient(load_config(_resolve(args))) as api:
        status = api.get("/api/v1/status")
    if args.json:
        print_json(status)
        return 0
    out = sys.stdout
    cert = status["certificate"]
    out.write(
        f"{status['party']} ({status['federation']}): certificate expires {cert['not_after']} "
        f"({cert['days_left']} days left)\n"
    )
    for p in status["peers"]:
        state = "reachable" if p["reachable"] and p["tls_verified"] else f"NOT reachable ({p.get('error')})"
        out.write(f"  peer {p['peer']} at {p['address']}: {state}\n")
    out.write(f"  running jobs: {status['jobs_running']} (see: fedcore job list)\n")
    return 0
