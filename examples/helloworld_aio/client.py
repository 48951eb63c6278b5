"""The asyncio greeter client: dials a target with naming.aio.dial() and says hello concurrently.

    python client.py etcd://127.0.0.1:2379/greeter
    python client.py etcd://127.0.0.1:2379/greeter --concurrency 8 --count 100

``--concurrency`` coroutines share one channel; each calls SayHello every ``--interval`` seconds and
prints which server answered. Calls wait for a ready server (wait_for_ready) for up to --timeout
seconds, so with every server down the client reports DEADLINE_EXCEEDED and carries on. Stop it
with Ctrl-C, or give --count (calls in all). The last line counts the replies per server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path

import grpc

import naming.aio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "helloworld"))
from stubs import load  # the helloworld example's proto and stub generator

greeter_pb2, greeter_pb2_grpc = load()


async def say_hello(args: argparse.Namespace) -> Counter[str]:
    answered: Counter[str] = Counter()
    async with naming.aio.dial(args.target, balancer=args.balancer) as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        calls = iter(range(args.count)) if args.count is not None else None

        async def caller() -> None:
            while calls is None or next(calls, None) is not None:
                request = greeter_pb2.HelloRequest(name=args.name)
                try:
                    reply = await stub.SayHello(request, timeout=args.timeout, wait_for_ready=True)
                    answered[reply.server] += 1
                    print(f"{reply.server}: {reply.message}", flush=True)
                except grpc.aio.AioRpcError as exc:
                    answered["error"] += 1
                    print(f"error: {exc.code().name}: {exc.details()}", flush=True)
                await asyncio.sleep(args.interval)

        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
    return answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--balancer", default="round_robin")
    parser.add_argument("--name", default="world")
    parser.add_argument("--concurrency", type=int, default=4, help="coroutines calling at once")
    parser.add_argument("--count", type=int, help="stop after this many calls in all")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between calls")
    parser.add_argument("--timeout", type=float, default=2.0, help="deadline of each call")
    args = parser.parse_args(argv)
    try:
        answered = asyncio.run(say_hello(args))
    except KeyboardInterrupt:
        return 130
    print(
        "replies: " + ", ".join(f"{name}={n}" for name, n in sorted(answered.items())), flush=True
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
