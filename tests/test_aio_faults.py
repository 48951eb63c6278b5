"""A hung server (SIGSTOP) under the asyncio channel: it costs its own calls their deadline, the
others go on, and close() does not wait for it.

The servers are child processes (bench._servers.ChildServer): a stopped process keeps its sockets
open, so its subchannel stays READY and round_robin keeps giving it its share.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import naming.aio
from bench._server import ECHO
from bench._servers import ChildServer, child_servers
from naming import Address
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import run

Code = grpc.StatusCode
READY = grpc.ChannelConnectivity.READY
CALLS = 30
HUNG_TIMEOUT = 0.5


@pytest.fixture
def servers() -> Iterator[list[ChildServer]]:
    with child_servers(3) as started:  # every child is killed at exit, stopped or not
        yield started


def test_a_hung_server_costs_only_its_calls_and_close_does_not_wait(
    servers: list[ChildServer],
) -> None:
    victim = servers[0]

    async def main() -> tuple[Counter[Any], Any]:
        channel = naming.aio.dial("static:///" + ",".join(s.address for s in servers))
        try:

            def all_ready(subchannels: Any) -> bool:
                return len(subchannels) == 3 and all(s.state is READY for s in subchannels.values())

            assert await channel.wait_for_subchannels(all_ready, DEFAULT_TIMEOUT)
            echo = channel.unary_unary(ECHO)
            victim.pause()
            outcomes = await asyncio.gather(
                *(echo(b"", timeout=HUNG_TIMEOUT) for _ in range(CALLS)), return_exceptions=True
            )
            counts = Counter(
                o.code() if isinstance(o, grpc.RpcError) else o.decode() for o in outcomes
            )
            # A call with no deadline on the hung server: only close() can end it.
            stuck = None
            for _ in range(3):  # round_robin: one of the next three picks is the victim
                call = echo(b"")
                await asyncio.sleep(0.05)
                if not call.done():
                    stuck = call
            assert stuck is not None
            assert channel.subchannels()[Address(victim.address)].in_flight == 1
        finally:
            await asyncio.wait_for(channel.close(), DEFAULT_TIMEOUT)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(stuck, DEFAULT_TIMEOUT)
        return counts, info.value.code()

    try:
        counts, stuck_code = run(main())
    finally:
        victim.resume()
    assert counts == {"s2": CALLS // 3, "s3": CALLS // 3, Code.DEADLINE_EXCEEDED: CALLS // 3}
    assert stuck_code is Code.CANCELLED
