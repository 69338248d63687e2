"""Transport throughput: one large numpy value over fedcore's mTLS gRPC, beside bare grpcio and TLS."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

DESCRIPTION = (
    "MB/s of one numpy value ctx.send -> ctx.recv over mTLS gRPC vs bare grpcio and a TLS 1.3 socket"
)
MIB = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mib", type=int, default=256, help="value size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=2, help="best of N transfers per row (default 2)")


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _material() -> dict[str, Any]:
    from fedcore.crypto import pki
    from fedcore.transport.grpc import TlsMaterial

    ca, ca_key = pki.make_ca("bench")
    out = {}
    for name in ("alice", "bob"):
        cert, key = pki.make_party_cert(ca, ca_key, name, "bench", ["127.0.0.1"])
        out[name] = TlsMaterial(ca, cert, key)
    return out


def _fedcore(value: Any, tls: dict[str, Any], repeat: int) -> float:
    import numpy as np

    from fedcore.context import Context
    from fedcore.runtime import make_runtime
    from fedcore.transport.grpc import PeerNode

    nodes = {n: PeerNode(n, "127.0.0.1:0", {}, tls[n], max_value_bytes=1 << 40) for n in tls}
    ports = {n: node.start() for n, node in nodes.items()}
    runtime = make_runtime("inline")
    try:
        for node in nodes.values():
            node.set_peers({n: f"127.0.0.1:{p}" for n, p in ports.items()})
        parties = ("alice", "bob")
        ctx = {n: Context(n, nodes[n].open_job("bench", parties), runtime, job_id="bench") for n in parties}
        got: list[Any] = []
        ctx["alice"].send("bob", "warmup", b"x")
        ctx["bob"].recv("alice", "warmup", 30)

        def once() -> None:
            sender = threading.Thread(target=ctx["alice"].send, args=("bob", "v", value))
            sender.start()
            got.append(ctx["bob"].recv("alice", "v", 600))
            sender.join()

        seconds = _best(once, repeat)
        if not np.array_equal(got[-1][:: 1 << 16], value[:: 1 << 16]) or got[-1].shape != value.shape:
            raise RuntimeError("the value received differs from the value sent")
        return seconds
    finally:
        runtime.close()
        for node in nodes.values():
            node.stop(0)


def _bare_grpc(data: bytes, tls: dict[str, Any], repeat: int) -> float:
    from concurrent import futures

    import grpc

    def consume(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return str(sum(len(r) for r in requests)).encode()

    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=opts)
    handler = grpc.stream_unary_rpc_method_handler(consume)  # bytes in, bytes out: no codec at all
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bare.Sink", {"Put": handler}),))
    port = server.add_secure_port("127.0.0.1:0", tls["bob"].server_credentials())
    server.start()
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        tls["alice"].channel_credentials(),
        options=[("grpc.ssl_target_name_override", "bob"), *opts],
    )
    put = channel.stream_unary("/bare.Sink/Put")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), MIB):
            yield data[start : start + MIB]  # one copy per message, as any sender of one buffer makes

    try:
        put(iter([b"warmup"]))

        def once() -> None:
            if int(put(chunks())) != len(data):
                raise RuntimeError("bare grpc lost bytes")

        return _best(once, repeat)
    finally:
        channel.close()
        server.stop(0)


def _tls_socket(data: bytes, tls: dict[str, Any], repeat: int) -> float:
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
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="bob") as conn,
        ):
            conn.sendall(data)
            conn.recv(1)
        server.join()

    try:
        return _best(once, repeat)
    finally:
        listener.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    size = args.size_mib * MIB
    value = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    data = value.tobytes()
    tls = _material()
    seconds = {
        "fedcore ctx.send -> ctx.recv (mTLS gRPC, codec included)": _fedcore(value, tls, args.repeat),
        "bare grpcio client stream, 1 MiB messages (mTLS)": _bare_grpc(data, tls, args.repeat),
        "Python ssl socket (TLS 1.3)": _tls_socket(data, tls, args.repeat),
    }
    bare = seconds["bare grpcio client stream, 1 MiB messages (mTLS)"]
    rows = [
        {"path": path, "seconds": s, "MB/s": size / 1e6 / s, "vs bare grpcio": bare / s}
        for path, s in seconds.items()
    ]
    fedcore_ratio = rows[0]["vs bare grpcio"]
    return {
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "fedcore_vs_bare_grpc": round(fedcore_ratio, 3),
        "target": 0.7,
        "meets_target": fedcore_ratio >= 0.7,
        "rows": rows,
    }
