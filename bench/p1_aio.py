"""p1a: unary throughput of ``naming.aio.dial`` round_robin, 16 concurrent callers.

Three child-process servers (p1's) and three channels over them, each calling the raw-bytes
``/bench.Echo/Echo`` through ``channel.unary_unary(ECHO)``, as a generated stub does:

* ours, aio: ``naming.aio.dial("static:///a1,a2,a3", balancer="round_robin")``, 16 coroutines;
* native, aio: one ``grpc.aio.insecure_channel("ipv4:a1,a2,a3")`` with grpcio's ``round_robin``
  policy, the same 16 coroutines on the same event loop;
* ours, sync: ``naming.dial`` of the same target, 16 threads (p1's threaded measure).

All three are warmed up, ours with its 3 subchannels READY, and every server has answered on
each. A round is a fixed number of calls; rounds are interleaved (aio ours, aio native, sync ours,
...) and each ratio is the median of the per-round ratios of calls per second. The rates
themselves (medians over rounds) are reported too: they move with the machine, the ratios do not.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import grpc

import naming
import naming.aio

from ._aio import Loop, all_answer, all_ready, concurrent_rate
from ._server import ECHO
from ._servers import child_servers
from ._stats import interleave, ratios
from .p1_throughput import REQUEST, _threaded_rate, _wait_all_answer, _wait_all_ready

__all__ = ["run"]

CALLERS = 16


async def _dial(addresses: list[str]) -> tuple[naming.aio.BalancedChannel, Any]:
    """(ours, native) aio channels over ``addresses``; made on the loop that will run them."""
    ours = naming.aio.dial("static:///" + ",".join(addresses), balancer="round_robin")
    native = grpc.aio.insecure_channel(
        "ipv4:" + ",".join(addresses), options=[("grpc.lb_policy_name", "round_robin")]
    )
    return ours, native


async def _close(*channels: Any) -> None:
    for channel in channels:
        await channel.close()


def _measures(
    loop: Loop, aio_calls: list[Any], sync_call: Any, calls: int
) -> list[Callable[[], float]]:
    """One measure of ``calls`` calls by 16 callers per channel: aio ours, aio native, sync ours."""
    return [
        *(loop.measure(concurrent_rate(call, REQUEST, calls, CALLERS)) for call in aio_calls),
        _threaded_rate(sync_call, calls, CALLERS),
    ]


def run(quick: bool) -> dict[str, float]:
    # Short rounds, many of them: only rounds close in time cancel the machine's drift (see p1).
    rounds = 12 if quick else 120
    calls = 192 if quick else 480  # per round, shared by the 16 callers
    warm_up = 640 if quick else 1600
    with child_servers(3) as servers, Loop() as loop:
        addresses = [server.address for server in servers]
        sync = naming.dial("static:///" + ",".join(addresses), balancer="round_robin")
        try:
            ours, native = loop.run(_dial(addresses))
            try:
                aio_calls = [
                    channel.unary_unary(ECHO, _registered_method=True) for channel in (ours, native)
                ]
                sync_call = sync.unary_unary(ECHO, _registered_method=True)
                loop.run(all_ready(ours, len(servers)))
                for call in aio_calls:
                    loop.run(all_answer(call, REQUEST, servers))
                _wait_all_ready(sync, len(servers))
                _wait_all_answer(sync_call, servers)

                interleave(1, *_measures(loop, aio_calls, sync_call, warm_up))
                ours_aio, native_aio, ours_sync = interleave(
                    rounds, *_measures(loop, aio_calls, sync_call, calls)
                )
            finally:
                loop.run(_close(ours, native))
        finally:
            sync.close()
    vs_native = ratios(ours_aio, native_aio)
    vs_sync = ratios(ours_aio, ours_sync)
    return {
        "p1_aio_rr_vs_native_16": vs_native.median,
        "p1_aio_rr_vs_native_16_spread": vs_native.spread,
        "p1_aio_vs_sync_16": vs_sync.median,
        "p1_aio_vs_sync_16_spread": vs_sync.spread,
        "p1_aio_ours_rate_16": round(statistics.median(ours_aio)),
        "p1_aio_native_rate_16": round(statistics.median(native_aio)),
        "p1_aio_sync_rate_16": round(statistics.median(ours_sync)),
    }
