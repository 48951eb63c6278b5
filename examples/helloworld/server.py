"""The greeter server: serves helloworld.Greeter and, with --register, publishes itself.

    python server.py --port 50051
    python server.py --port 50052 --register etcd://127.0.0.1:2379/greeter

Every reply names the server that sent it (``--name``, by default its address), so the client shows
how its calls are spread. SIGTERM or SIGINT stops it; with --register the record is removed first
(``naming.register_server``), so that clients stop picking the server before it goes away.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from stubs import load

import naming

greeter_pb2, greeter_pb2_grpc = load()


class Greeter(greeter_pb2_grpc.GreeterServicer):
    def __init__(self, name: str) -> None:
        self.name = name

    def _reply(self, who: str) -> Any:
        return greeter_pb2.HelloReply(message=f"Hello {who}", server=self.name)

    def SayHello(self, request: Any, context: Any) -> Any:
        return self._reply(request.name)

    def SayHelloEach(self, request: Any, context: Any) -> Iterator[Any]:
        for who in request.name.split(","):
            yield self._reply(who)

    def SayHelloAll(self, requests: Iterator[Any], context: Any) -> Any:
        return self._reply(", ".join(request.name for request in requests))

    def SayHelloChat(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        for request in requests:
            yield self._reply(request.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument("--name", help="the name replies carry (default: host:port)")
    parser.add_argument("--register", metavar="TARGET", help="register under this target")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to finish calls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        raise SystemExit(f"greeter: cannot listen on {args.host}:{args.port}")
    address = f"{args.host}:{port}"
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(args.name or address), server)
    server.start()
    print(f"greeter {args.name or address} serving on {address}", flush=True)

    if args.register:
        # Deregisters, then stops the server, on SIGTERM or SIGINT.
        naming.register_server(server, args.register, address, grace=args.grace)
    else:
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            if not stopping.is_set():
                stopping.set()
                server.stop(args.grace)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    server.wait_for_termination()
    print(f"greeter {args.name or address} stopped", flush=True)


if __name__ == "__main__":
    main()
