"""The legacy grpc-go v1 balancer scenarios of tests/test_channel_legacy.py, through naming.aio.dial.

Real ``grpc.aio`` servers on 127.0.0.1, the manual resolver, and concurrent calls as coroutines on
one event loop instead of threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from naming import Update
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT
from naming.testing.aio import call_port, run
from tests._aio import Harness, wait_for_failure, wait_for_server, wait_until

READY = grpc.ChannelConnectivity.READY
Code = grpc.StatusCode


def add(server: Any) -> Update:
    return Update.add(server.address)


def delete(server: Any) -> Update:
    return Update.delete(server.address)


async def wait_until_blocked_in_get(channel: Any) -> None:
    """Until a wait_for_ready call with a short deadline ends DEADLINE_EXCEEDED."""
    while True:
        error = await wait_for_failure(
            lambda: call_port(channel, wait_for_ready=True, timeout=SHORT_TIMEOUT)
        )
        if error.code() is Code.DEADLINE_EXCEEDED:
            return


async def concurrently(
    count: int, work: Callable[[], Awaitable[Any]], during: Callable[[], Awaitable[None]]
) -> list[Any]:
    """``count`` coroutines running ``work()``, and ``during()`` meanwhile; each result or error."""

    async def one() -> Any:
        await asyncio.sleep(0.01)
        return await work()

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    await asyncio.sleep(0.01)
    await during()
    return await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), DEFAULT_TIMEOUT * 2
    )


async def wait_for_state(channel: Any, address: str, state: Any) -> None:
    async def reached() -> bool:
        found = [s for a, s in channel.subchannels().items() if a.addr == address]
        return bool(found) and found[0].state is state

    await wait_until(reached, f"{address} to be {state.name}")


# -- round robin ---------------------------------------------------------------------------------


def test_name_discovery() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            s0, s1 = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target)
            assert await call_port(channel) == "s0"
            resolver.update([delete(s0), add(s1)])
            await wait_for_server(channel, "s1")

    run(main())


@pytest.mark.parametrize("balancer", ["round_robin", "pick_first"])
def test_empty_addrs(balancer: str) -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target, balancer=balancer)
            assert await call_port(channel) == "s0"
            resolver.update([delete(s0)])
            error = await wait_for_failure(lambda: call_port(channel, timeout=SHORT_TIMEOUT))
            assert error.code() is Code.UNAVAILABLE
            assert error.details() == f"{target}: {balancer}: there is no address available"

    run(main())


def test_round_robin() -> None:
    async def main() -> None:
        async with Harness(3) as harness:
            servers = harness.servers
            resolver, target = harness.manual(servers[:1])
            channel = await harness.ready(target)
            resolver.update([add(servers[1])])
            await wait_for_server(channel, "s1")
            resolver.update([add(servers[2])])
            await wait_for_server(channel, "s2")
            names = [await call_port(channel) for _ in range(10)]
            assert names == [f"s{i % 3}" for i in range(10)]

    run(main())


@pytest.mark.parametrize("balancer", ["round_robin", "pick_first"])
def test_close_with_pending_rpc(balancer: str) -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target, balancer=balancer)
            assert await call_port(channel, wait_for_ready=True) == "s0"
            resolver.update([delete(s0)])
            await wait_until_blocked_in_get(channel)

            async def close_soon() -> None:
                await asyncio.sleep(0.005)
                await channel.close()

            results = await concurrently(
                2, lambda: call_port(channel, wait_for_ready=True, timeout=None), close_soon
            )
            assert [r.code() for r in results] == [Code.CANCELLED, Code.CANCELLED]
            assert all(r.details() == "channel: the channel is closed" for r in results)

    run(main())


def test_get_on_wait_channel() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target)
            resolver.update([delete(s0)])
            await wait_until_blocked_in_get(channel)

            async def rejoin() -> None:
                resolver.update([add(s0)])

            results = await concurrently(1, lambda: call_port(channel, wait_for_ready=True), rejoin)
            assert results == ["s0"]

    run(main())


def test_one_server_down() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            s0, s1 = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target)
            resolver.update([add(s1)])
            await wait_for_server(channel, "s1")
            results = await concurrently(
                100, lambda: call_port(channel, wait_for_ready=True), s0.stop
            )
            errors = [r for r in results if not isinstance(r, str)]
            assert all(isinstance(e, grpc.RpcError) for e in errors), errors
            assert {e.code() for e in errors} <= {Code.UNAVAILABLE, Code.CANCELLED}
            assert await call_port(channel, wait_for_ready=True) == "s1"

    run(main())


def test_one_address_removal() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            s0, s1 = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target)
            resolver.update([add(s1)])
            await wait_for_server(channel, "s1")

            async def remove() -> None:
                resolver.update([delete(s0)])

            results = await concurrently(
                100, lambda: call_port(channel, wait_for_ready=True), remove
            )
            assert set(results) <= {"s0", "s1"}, [r for r in results if r not in ("s0", "s1")]
            await wait_for_server(channel, "s1")
            assert {await call_port(channel) for _ in range(10)} == {"s1"}

    run(main())


def test_all_down_gives_deadline_exceeded_or_unavailable() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            s0, s1 = harness.servers
            _, target = harness.manual([s0, s1])
            channel = await harness.ready(target)
            await s0.stop()
            await s1.stop()
            waiting = await wait_for_failure(
                lambda: call_port(channel, wait_for_ready=True, timeout=SHORT_TIMEOUT * 4)
            )
            assert waiting.code() is Code.DEADLINE_EXCEEDED
            failing = await wait_for_failure(lambda: call_port(channel, timeout=SHORT_TIMEOUT))
            assert failing.code() is Code.UNAVAILABLE
            await s1.start()  # on its port: the channel reconnects by itself
            await wait_for_server(channel, "s1")

    run(main())


# -- pick first ---------------------------------------------------------------------------------


async def twenty_calls(channel: Any) -> set[str]:
    return {await call_port(channel) for _ in range(20)}


def test_pick_first_order_all_servers_up() -> None:
    async def main() -> None:
        async with Harness(3) as harness:
            s0, s1, s2 = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target, balancer="pick_first")
            resolver.update([add(s1)])
            resolver.update([add(s2)])
            for server in (s0, s1, s2):
                await wait_for_state(channel, server.address, READY)
            assert await twenty_calls(channel) == {"s0"}
            resolver.update([delete(s0)])
            await wait_for_server(channel, "s1")
            assert await twenty_calls(channel) == {"s1"}
            resolver.update([add(s0)])  # the list is now [s1, s2, s0]: s1 stays picked
            await wait_for_state(channel, s0.address, READY)
            assert await twenty_calls(channel) == {"s1"}
            resolver.update([delete(s1)])
            await wait_for_server(channel, "s2")
            assert await twenty_calls(channel) == {"s2"}

    run(main())


def test_pick_first_order_one_server_down() -> None:
    async def main() -> None:
        async with Harness(3) as harness:
            s0, s1, s2 = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target, balancer="pick_first")
            resolver.update([add(s1), add(s2)])
            for server in (s0, s1, s2):
                await wait_for_state(channel, server.address, READY)
            assert await twenty_calls(channel) == {"s0"}
            await s0.stop()  # the list is unchanged
            await wait_for_server(channel, "s1")
            assert await twenty_calls(channel) == {"s1"}
            await s0.start()  # on the same port
            await wait_for_state(channel, s0.address, READY)
            assert await twenty_calls(channel) == {"s1"}
            resolver.update([delete(s1)])
            await wait_for_server(channel, "s0")
            assert await twenty_calls(channel) == {"s0"}

    run(main())


def test_connectivity_states() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            s0, s1 = harness.servers
            resolver, target = harness.manual([s0])
            channel = harness.dial(target)
            assert channel.get_state() in (
                grpc.ChannelConnectivity.IDLE,
                grpc.ChannelConnectivity.CONNECTING,
            )

            async def reaches(state: Any) -> None:
                async def there() -> bool:
                    current = channel.get_state()
                    if current is not state:
                        await asyncio.wait_for(
                            channel.wait_for_state_change(current), SHORT_TIMEOUT * 4
                        )
                    return channel.get_state() is state

                await wait_until(lambda: _quiet(there), f"the channel to be {state.name}")

            await reaches(READY)
            resolver.update([delete(s0)])
            await reaches(grpc.ChannelConnectivity.TRANSIENT_FAILURE)
            resolver.update([add(s1)])
            await reaches(READY)
            await channel.close()
            assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN

    run(main())


async def _quiet(check: Callable[[], Awaitable[bool]]) -> bool:
    """``check()``, False when it timed out."""
    try:
        return await check()
    except asyncio.TimeoutError:
        return False
