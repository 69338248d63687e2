#!/usr/bin/env python3
"""Health probe of a fedcore party daemon: the standard gRPC health check, over mutual TLS.

Usage: fedcore-healthcheck [/etc/fedcore/party.toml] [--address HOST:PORT] [--timeout SECONDS]

The daemon serves ``grpc.health.v1.Health`` on its peer port, which only accepts clients with a
certificate of the federation. A plaintext gRPC probe (Kubernetes ``grpc:`` probes, the stock
``grpc_health_probe`` without certificates) is therefore refused. This probe runs inside the
party's own container or host and dials its own daemon with the party's own certificate, checking
the server by its party id exactly as a peer would. Exit status: 0 when the daemon answers
SERVING for ``fedcore.v1.Party``, 1 otherwise (the reason goes to stderr, never key material).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

SERVICE = "fedcore.v1.Party"
DEFAULT_CONFIG = "/etc/fedcore/party.toml"


def dial_address(listen_host: str, port: int) -> str:
    """Where to dial our own daemon: its bind address, with a wildcard bind dialed on loopback."""
    try:
        ip = ipaddress.ip_address(listen_host)
    except ValueError:
        return f"{listen_host}:{port}"
    if ip.is_unspecified:
        return f"127.0.0.1:{port}" if ip.version == 4 else f"[::1]:{port}"
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def check(config_path: str, address: str | None, timeout_s: float) -> str:
    """Return the serving status name reported by the daemon (raises on config or RPC errors)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from fedcore.party.config import load_config

    config = load_config(config_path)
    ca, cert, key = (p.read_bytes() for p in (config.tls.ca, config.tls.cert, config.tls.key))
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    target = address or dial_address(config.listen.host, config.listen.port)
    options = [("grpc.ssl_target_name_override", config.party_id)]
    with grpc.secure_channel(target, credentials, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout_s)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcore-healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help="the party's party.toml")
    parser.add_argument("--address", help="HOST:PORT to dial instead of the config's [party] listen")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    args = parser.parse_args(argv)
    try:
        status = check(args.config, args.address, args.timeout)
    except Exception as exc:  # any failure is "unhealthy"; say why without secrets
        code = getattr(exc, "code", None)
        reason = code().name if callable(code) else type(exc).__name__
        detail = str(exc).splitlines()[0] if not callable(code) else ""
        print(f"fedcore-healthcheck: unhealthy: {reason} {detail}".rstrip(), file=sys.stderr)
        return 1
    if status != "SERVING":
        print(f"fedcore-healthcheck: unhealthy: {SERVICE} is {status}", file=sys.stderr)
        return 1
    print(f"fedcore-healthcheck: {SERVICE} SERVING")
    return 0


if __name__ == "__main__":
    sys.exit(main())
