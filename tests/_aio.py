"""What the asyncio channel tests share: a harness with manual resolvers and naming.aio.dial."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

import naming.aio
from backends.manual import ManualResolver
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import AioEchoServer, AioHarness, call_port
from naming.testing.servers import FAST_RECONNECT

__all__ = ["Harness", "wait_for_failure", "wait_for_server", "wait_until"]

POLL = 0.01


class Harness(AioHarness):
    """AioHarness, plus published manual resolvers (closed at the end) and ``dial()``."""

    def __init__(self, count: int = 0) -> None:
        super().__init__(count)
        self.resolvers: list[ManualResolver] = []

    def manual(self, initial: Iterable[AioEchoServer | str] = ()) -> tuple[ManualResolver, str]:
        name = f"aio-test-{uuid.uuid4().hex[:12]}"
        addresses = [s.address if isinstance(s, AioEchoServer) else s for s in initial]
        resolver = ManualResolver(addresses, name=name)
        self.resolvers.append(resolver)
        return resolver, f"manual:///{name}"

    def dial(self, target: str, **kwargs: Any) -> naming.aio.BalancedChannel:
        kwargs.setdefault("options", FAST_RECONNECT)
        return self.adopt(naming.aio.dial(target, **kwargs))

    async def ready(self, target: str, **kwargs: Any) -> naming.aio.BalancedChannel:
        channel = self.dial(target, **kwargs)
        await asyncio.wait_for(channel.channel_ready(), DEFAULT_TIMEOUT)
        return channel

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            for resolver in self.resolvers:
                resolver.close()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Await ``predicate()`` every 10 ms until it is true; AssertionError naming ``what`` after
    ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)


async def failure(call: Callable[[], Awaitable[Any]]) -> grpc.RpcError | None:
    try:
        await call()
    except grpc.RpcError as error:
        return error
    return None


async def wait_for_failure(call: Callable[[], Awaitable[Any]]) -> grpc.RpcError:
    """Repeat ``call()`` until it raises an RpcError; that error."""
    errors: list[grpc.RpcError] = []

    async def failed() -> bool:
        error = await failure(call)
        if error is not None:
            errors.append(error)
        return error is not None

    await wait_until(failed, "a call to fail")
    return errors[-1]


async def wait_for_server(channel: Any, name: str) -> None:
    async def answered() -> bool:
        try:
            return await call_port(channel, timeout=1.0) == name
        except grpc.RpcError:
            return False

    await wait_until(answered, f"{name} to answer")
