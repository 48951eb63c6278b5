"""The greeter client: dials a target with naming.dial() and calls SayHello every 100 ms.

    python client.py static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053
    python client.py etcd://127.0.0.1:2379/greeter --balancer pick_first

Each line names the server that answered. Calls wait for a ready server (wait_for_ready) for up to
--timeout seconds, so with every server down the client reports DEADLINE_EXCEEDED and carries on.
Stop it with Ctrl-C, or give --count.
"""

from __future__ import annotations

import argparse
import time

import grpc
from stubs import load

import naming

greeter_pb2, greeter_pb2_grpc = load()

DEFAULT_TARGET = "static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default=DEFAULT_TARGET)
    parser.add_argument("--balancer", default="round_robin")
    parser.add_argument("--name", default="world")
    parser.add_argument("--count", type=int, help="stop after this many calls")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between calls")
    parser.add_argument("--timeout", type=float, default=2.0, help="deadline of each call")
    args = parser.parse_args(argv)

    with naming.dial(args.target, balancer=args.balancer) as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        sent = 0
        try:
            while args.count is None or sent < args.count:
                request = greeter_pb2.HelloRequest(name=args.name)
                try:
                    reply = stub.SayHello(request, timeout=args.timeout, wait_for_ready=True)
                    print(f"{reply.server}: {reply.message}", flush=True)
                except grpc.RpcError as exc:
                    print(f"error: {exc.code().name}: {exc.details()}", flush=True)
                sent += 1
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
