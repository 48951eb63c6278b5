"""A small gRPC server for the benchmarks, run as a child process.

    python -m bench._server --name s1 [--port 0] [--register TARGET]

It answers ``/bench.Echo/Echo`` (raw bytes: the reply is the server's name) and
``/bench.Echo/Slow`` (the same after the number of milliseconds in the request); ``--delay MS``
makes every Echo call that much slower (one slow server among fast ones). It prints
``PORT <n>`` once serving. SIGTERM stops it gracefully; with ``--register`` the record goes first
(``naming.register_server``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from concurrent import futures
from typing import Any

import grpc

import naming

SERVICE = "bench.Echo"
ECHO = f"/{SERVICE}/Echo"
SLOW = f"/{SERVICE}/Slow"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--register", metavar="TARGET")
    parser.add_argument("--ttl", type=float, default=3.0)
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--delay", type=float, default=0.0, help="ms to sleep in every Echo call")
    args = parser.parse_args(argv)
    reply = args.name.encode()

    delay = args.delay / 1000

    def echo(request: bytes, context: Any) -> bytes:
        if delay:
            time.sleep(delay)
        return reply

    def slow(request: bytes, context: Any) -> bytes:
        time.sleep(int(request or b"0") / 1000)
        return reply

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[handler])
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    if args.register:
        naming.register_server(
            server, args.register, f"127.0.0.1:{port}", ttl=args.ttl, grace=args.grace
        )
    else:
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            if not stopping.is_set():
                stopping.set()
                server.stop(args.grace)

        signal.signal(signal.SIGTERM, stop)
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()
    sys.exit(0)


if __name__ == "__main__":
    main()
