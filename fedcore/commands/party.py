"""``fedcore party check|serve|status CONFIG``: validate, run and inspect a party daemon."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from fedcore.commands._common import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("party", help="check, serve or inspect a party daemon")
    psub = p.add_subparsers(dest="party_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate a party.toml and its files; --peers dials every peer")
    check.add_argument("config", help="the party's party.toml")
    check.add_argument("--peers", action="store_true", help="also dial every peer over mTLS")
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    check.set_defaults(func=run_check)
    serve = psub.add_parser("serve", help="run the party daemon until SIGTERM")
    serve.add_argument("config", help="the party's party.toml")
    serve.set_defaults(func=run_serve)
    status = psub.add_parser("status", help="ask the running daemon: peers, certificate, jobs")
    status.add_argument("config", help="the party's party.toml")
    status.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    status.set_defaults(func=run_status)


def run_check(args: argparse.Namespace) -> int:
    from fedcore.party.config import load_config
    from fedcore.party.tlscheck import verify_tls

    config = load_config(args.config)
    info = verify_tls(config)
    report: dict[str, Any] = {
        "party": config.party_id, "federation": config.federation, "config": str(config.path),
        "certificate": {"not_after": info["not_after"], "days_left": info["days_left"],
                        "trusted_cas": info.get("trusted_cas", [])},
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
    out.write(f"{report['party']} ({report['federation']}): config and TLS files OK; certificate "
              f"expires {cert['not_after']} ({cert['days_left']} days left)\n")
    trusted = cert.get("trusted_cas", [])
    if len(trusted) > 1:  # a CA rotation is in progress: say which CAs this party accepts
        out.write(f"  trusts {len(trusted)} CAs (rotation in progress): {', '.join(map(str, trusted))}\n")
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

    return PartyDaemon(load_config(args.config)).serve()


def run_status(args: argparse.Namespace) -> int:
    from fedcore.party import control
    from fedcore.party.config import load_config

    config = load_config(args.config)
    status = control.call(config.control, {"op": "status"})
    status.pop("final", None)
    if args.json:
        print_json(status)
        return 0
    out = sys.stdout
    cert = status["certificate"]
    out.write(f"{status['party']} ({status['federation']}): certificate expires {cert['not_after']} "
              f"({cert['days_left']} days left)\n")
    for p in status["peers"]:
        state = "reachable" if p["reachable"] and p["tls_verified"] else f"NOT reachable ({p.get('error')})"
        out.write(f"  peer {p['peer']} at {p['address']}: {state}\n")
    jobs = status["jobs"]
    out.write(f"  running jobs: {len(jobs)}\n")
    for job in jobs:
        out.write(f"    {job['job_id']} {job['script']} {job['state']} step {job['step']} "
                  f"(initiator {job['initiator']})\n")
    return 0
