"""p2: what a pick costs next to the RPC it serves.

For round_robin and pick_first with 3, 100 and 10,000 addresses, all connected: the time of one
``get()`` (plus ``put()`` when the balancer returns one) divided by the time of one unary RPC over a
direct loopback channel to a child-process server, measured in interleaved rounds.
"""

from __future__ import annotations

from typing import Any

import grpc

from backends.manual import ManualResolver
from balancers import Balancer, DoneInfo, PickFirst, RoundRobin
from naming import Address

from ._server import ECHO
from ._servers import child_servers
from ._stats import interleave, ratios, timed

SIZES = (3, 100, 10000)
POLICIES = {"rr": RoundRobin, "pf": PickFirst}


def _balancer(cls: type[Balancer], size: int) -> tuple[Balancer, ManualResolver]:
    addresses = [Address(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:50051") for i in range(size)]
    resolver = ManualResolver(addresses)
    balancer = cls(resolver=resolver)
    balancer.start("manual:///bench")
    notifications = balancer.notify()
    assert notifications is not None
    assert len(notifications.get(timeout=30)) == size
    for address in addresses:
        balancer.up(address)
    balancer.get()  # builds the snapshot
    return balancer, resolver


def _picks(balancer: Balancer, count: int) -> float:
    done = DoneInfo(code=grpc.StatusCode.OK, latency=0.0001)

    def run() -> None:
        get = balancer.get
        for _ in range(count):
            _, put = get()
            if put is not None:
                put(done)

    return timed(run) / count


def run(quick: bool) -> dict[str, Any]:
    rounds, rpcs, picks = (5, 200, 20_000) if quick else (15, 1_000, 100_000)
    results: dict[str, Any] = {}
    with child_servers(1) as (server,), grpc.insecure_channel(server.address) as channel:
        echo = channel.unary_unary(ECHO)
        for _ in range(200):  # warm up the connection
            echo(b"", timeout=10)

        def rpc() -> float:
            return timed(lambda: echo(b"", timeout=10), rpcs)

        for key, cls in POLICIES.items():
            for size in SIZES:
                balancer, resolver = _balancer(cls, size)
                try:
                    rpc_times, pick_times = interleave(
                        rounds, rpc, lambda b=balancer: _picks(b, picks)
                    )
                finally:
                    balancer.close()
                    resolver.close()
                summary = ratios(pick_times, rpc_times)
                results[f"p2_pick_share_{key}_{size}"] = round(summary.median, 5)
                results[f"p2_pick_share_{key}_{size}_spread"] = round(summary.spread, 3)
        results["p2_rpc_seconds"] = round(sorted(rpc_times)[len(rpc_times) // 2], 7)
    return results
