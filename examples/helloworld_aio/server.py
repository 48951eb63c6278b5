"""The asyncio greeter server: helloworld.Greeter on grpc.aio, registered with naming.aio.

    python server.py --port 50051 --register etcd://127.0.0.1:2379/greeter

Every reply names the server that sent it (``--name``, by default its address). With --register it
publishes itself through ``naming.aio.register_server``: on SIGTERM or Ctrl-C the record is removed
first, so that clients stop picking the server, and then the server stops, finishing its calls
within ``--grace`` seconds. Without --register it only serves, until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

import naming.aio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "helloworld"))
from stubs import load  # the helloworld example's proto and stub generator

greeter_pb2, greeter_pb2_grpc = load()


class Greeter(greeter_pb2_grpc.GreeterServicer):  # type: ignore[misc, name-defined]
    def __init__(self, name: str) -> None:
        self.name = name

    def _reply(self, who: str) -> Any:
        return greeter_pb2.HelloReply(message=f"Hello {who}", server=self.name)

    async def SayHello(self, request: Any, context: Any) -> Any:
        return self._reply(request.name)

    async def SayHelloEach(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for who in request.name.split(","):
            yield self._reply(who)

    async def SayHelloAll(self, requests: AsyncIterator[Any], context: Any) -> Any:
        return self._reply(", ".join([request.name async for request in requests]))

    async def SayHelloChat(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield self._reply(request.name)


async def serve(args: argparse.Namespace) -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        raise SystemExit(f"greeter: cannot listen on {args.host}:{args.port}")
    address = f"{args.host}:{port}"
    name = args.name or address
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(name), server)
    await server.start()
    print(f"greeter {name} serving on {address}", flush=True)
    if args.register:
        # Deregisters, then stops the server, on SIGTERM or SIGINT.
        await naming.aio.register_server(server, args.register, address, grace=args.grace)
    else:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.stop(args.grace)))
    await server.wait_for_termination()
    print(f"greeter {name} stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument("--name", help="the name replies carry (default: host:port)")
    parser.add_argument("--register", metavar="TARGET", help="register under this target")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to finish calls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
