"""Transport throughput: one large numpy value over fedcore's mTLS gRPC, beside bare grpcio and TLS.

Figures that can be believed on a shared machine: the paths run interleaved (fedcore, bare
grpcio, TLS socket, fedcore, ...), each fedcore transfer paired with the bare grpcio transfer
right after it, so load from elsewhere hits both sides of a pair alike; the headline is the
median over the pairs of bare_seconds / fedcore_seconds, with its spread (min, max, and the
interquartile range), and every transfer's seconds are in the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

DESCRIPTION = (
    "MB/s of one numpy value ctx.send -> ctx.recv over mTLS gRPC vs bare grpcio and a TLS 1.3 socket"
)
MIB = 1 << 20
CTX = "fedcore ctx.send -> ctx.recv (mTLS gRPC, codec included)"
BARE = "bare grpcio client stream, 1 MiB messages (mTLS)"
SSL = "Python ssl socket (TLS 1.3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=256, help="value size in MiB (default 256)")
    parser.add_argument(
        "--repeat", type=int, default=7, help="interleaved fedcore/bare pairs, at least 5 (default 7)"
    )
    parser.add_argument(
        "--fedcore-only", action="store_true", help="skip the baselines (for multi-GiB values: less memory)"
    )


def _material() -> dict[str, Any]:
    from fedcore.crypto import pki
    from fedcore.transport.grpc import TlsMaterial

    ca, ca_key = pki.make_ca("bench")
    out = {}
    for name in ("alice", "bob"):
        cert, key = pki.make_party_cert(ca, ca_key, name, "bench", ["127.0.0.1"])
        out[name] = TlsMaterial(ca, cert, key)
    return out


@contextlib.contextmanager
def _fedcore(value: Any, tls: dict[str, Any]) -> Iterator[dict[str, Callable[[], None]]]:
    """Two nodes on loopback; yields the ctx.send -> ctx.recv transfer of ``value``."""
    import numpy as np

    from fedcore.context import Context
    from fedcore.runtime import make_runtime
    from fedcore.transport.grpc import PeerNode

    nodes = {n: PeerNode(n, "127.0.0.1:0", {}, tls[n], max_value_bytes=1 << 40) for n in tls}
    runtime = make_runtime("inline")
    try:
        book = {n: f"127.0.0.1:{node.start()}" for n, node in nodes.items()}
        for node in nodes.values():
            node.set_peers(book)
        parties = ("alice", "bob")
        ctx = {n: Context(n, nodes[n].open_job("bench", parties), runtime, job_id="bench") for n in parties}

        def transfer(send: Callable[[], None]) -> None:
            sender = threading.Thread(target=send)
            sender.start()
            got = ctx["bob"].recv("alice", "v", 600)
            sender.join()
            if got.shape != value.shape or not np.array_equal(got[:: 1 << 16], value[:: 1 << 16]):
                raise RuntimeError("the value received differs from the value sent")

        def with_ctx() -> None:
            transfer(lambda: ctx["alice"].send("bob", "v", value))

        ctx["alice"].send("bob", "v", value[: 8 * MIB])  # warm the connection up
        ctx["bob"].recv("alice", "v", 60)
        yield {CTX: with_ctx}
    finally:
        runtime.close()
        for node in nodes.values():
            node.stop(0)


@contextlib.contextmanager
def _bare_grpc(data: bytes, tls: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """A bytes-in bytes-out grpcio client stream: no protobuf, no codec, no reassembly."""
    from concurrent import futures

    import grpc

    def consume(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return str(sum(len(r) for r in requests)).encode()

    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=opts)
    handler: grpc.RpcMethodHandler[Iterator[bytes], bytes] = grpc.stream_unary_rpc_method_handler(consume)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bare.Sink", {"Put": handler}),))
    port = server.add_secure_port("127.0.0.1:0", tls["bob"].server_credentials())
    server.start()
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        tls["alice"].channel_credentials(),
        options=[("grpc.ssl_target_name_override", "bob"), *opts],
    )
    put: grpc.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary("/bare.Sink/Put")

    def chunks(size: int) -> Iterator[bytes]:
        for start in range(0, size, MIB):
            yield data[start : min(start + MIB, size)]  # one copy per message, as any sender of one buffer

    def once() -> None:
        if int(put(chunks(len(data)))) != len(data):
            raise RuntimeError("bare grpc lost bytes")

    try:
        put(chunks(8 * MIB))  # the same warm-up as fedcore's
        yield once
    finally:
        channel.close()
        server.stop(0)


@contextlib.contextmanager
def _tls_socket(data: bytes, tls: dict[str, Any]) -> Iterator[Callable[[], None]]:
    import socket
    import ssl
    import tempfile
    from pathlib import Path

    from fedcore.crypto.pki import write_private

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "bob.pem"), Path(tmp, "bob.key")
        cert.write_bytes(tls["bob"].cert_pem)
        write_private(key, tls["bob"].key_pem)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    client_ctx.load_verify_locations(cadata=tls["bob"].ca_pem.decode())
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    buf = bytearray(len(data))

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
            view, pos = memoryview(buf), 0
            while pos < len(buf):
                pos += tls_conn.recv_into(view[pos:], min(len(buf) - pos, 16 * MIB))
            tls_conn.sendall(b"k")

    def once() -> None:
        server = threading.Thread(target=serve)
        server.start()
        raw = socket.create_connection(("127.0.0.1", port))
        with raw, client_ctx.wrap_socket(raw, server_hostname="bob") as conn:
            conn.sendall(data)
            conn.recv(1)
        server.join()

    try:
        yield once
    finally:
        listener.close()


def _race(paths: dict[str, Callable[[], None]], repeat: int) -> dict[str, list[float]]:
    """Seconds of every transfer per path, run round robin so load from elsewhere hits every path alike."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, transfer in paths.items():
            start = time.perf_counter()
            transfer()
            times[name].append(time.perf_counter() - start)
    return times


def _spread(values: list[float]) -> dict[str, float]:
    import statistics

    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "q1": q[0],
        "q3": q[2],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fedcore.errors import ConfigError

    if args.repeat < (1 if args.fedcore_only else 5):
        raise ConfigError(f"--repeat {args.repeat}: the ratio's median and spread need at least 5 pairs")
    size = args.size_mib * MIB
    value = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    tls = _material()
    if args.fedcore_only:
        with _fedcore(value, tls) as fed:
            times = _race({CTX: fed[CTX]}, args.repeat)
        med = _spread(times[CTX])["median"]
        rows = [{"path": CTX, "median s": med, "MB/s": size / 1e6 / med, "best s": min(times[CTX])}]
        return {"size_mib": args.size_mib, "repeat": args.repeat, "seconds": times, "rows": rows}
    data = value.tobytes()
    with _fedcore(value, tls) as fed, _bare_grpc(data, tls) as bare, _tls_socket(data, tls) as plain:
        times = _race({**fed, BARE: bare, SSL: plain}, args.repeat)
    ratios = [b / f for f, b in zip(times[CTX], times[BARE], strict=True)]
    ratio = _spread(ratios)
    bare_median = _spread(times[BARE])["median"]
    rows = []
    for name, secs in times.items():
        stats = _spread(secs)
        rows.append(
            {
                "path": name,
                "median s": stats["median"],
                "MB/s": size / 1e6 / stats["median"],
                "min s": stats["min"],
                "max s": stats["max"],
                "vs bare grpcio": bare_median / stats["median"],
            }
        )
    rows.append(
        {
            "path": "pair ratio bare/fedcore (median, min..max)",
            "median s": ratio["median"],
            "min s": ratio["min"],
            "max s": ratio["max"],
        }
    )
    return {
        "size_mib": args.size_mib,
        "pairs": args.repeat,
        "fedcore_vs_bare_grpc": round(ratio["median"], 3),
        "fedcore_vs_bare_grpc_spread": {k: round(v, 3) for k, v in ratio.items()},
        "pair_ratios": [round(r, 3) for r in ratios],
        "seconds": times,
        "target": 0.9,
        "meets_target": ratio["median"] >= 0.9,
        "rows": rows,
    }
