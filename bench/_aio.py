"""What the asyncio sections share: an event loop that the synchronous bench code drives, and the
measures and waits that run on it.

The sections stay synchronous (``bench._stats.interleave`` takes plain functions), so each keeps one
:class:`Loop` and runs a coroutine on it per measure; the aio channels are made, used and closed
on that loop. Between two runs the loop stands still, so a synchronous round in between (threads
on a ``naming.dial`` channel) has the process to itself, as the aio rounds have.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc

from ._servers import ChildServer

__all__ = ["Loop", "all_answer", "all_ready", "concurrent_rate", "ended"]

T = TypeVar("T")
Call = Callable[..., Any]  # an aio multicallable: call(request, timeout=...) -> awaitable reply

READY_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
ROUND_TIMEOUT = 60.0
MAX_ANSWER_CALLS = 1000


class Loop:
    """One new event loop, run from synchronous code: ``run(coroutine)`` until it is done."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def measure(self, measure: Callable[[], Coroutine[Any, Any, float]]) -> Callable[[], float]:
        """``measure`` as the plain function ``interleave`` calls: one run of it on this loop."""
        return lambda: self.run(measure())

    def close(self) -> None:
        """Cancel what is left on the loop, wait for it, then close the loop."""
        loop = self._loop
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def __enter__(self) -> Loop:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def concurrent_rate(
    call: Call, request: bytes, calls: int, callers: int
) -> Callable[[], Coroutine[Any, Any, float]]:
    """A measure: ``calls`` unary calls shared by ``callers`` coroutines, in calls per second.

    The coroutines are waiting before the clock starts and are released together; the round ends
    when the last has made its share, or fails after ROUND_TIMEOUT s.
    """
    share = calls // callers

    async def caller(go: asyncio.Event) -> None:
        await go.wait()
        for _ in range(share):
            await call(request, timeout=CALL_TIMEOUT)

    async def measure() -> float:
        go = asyncio.Event()
        tasks = [asyncio.ensure_future(caller(go)) for _ in range(callers)]
        try:
            await asyncio.sleep(0)  # each caller runs up to go.wait()
            started = time.perf_counter()
            go.set()
            await asyncio.wait_for(asyncio.gather(*tasks), ROUND_TIMEOUT)
            return share * callers / (time.perf_counter() - started)
        finally:
            await _cancelled(tasks)

    return measure


async def all_ready(channel: Any, count: int) -> None:
    """Wait until ``count`` subchannels of a ``naming.aio`` channel are READY."""

    def enough(subchannels: Mapping[Any, Any]) -> bool:
        states = [subchannel.state for subchannel in subchannels.values()]
        return states.count(grpc.ChannelConnectivity.READY) >= count

    if not await channel.wait_for_subchannels(enough, READY_TIMEOUT):
        raise RuntimeError(f"bench: {channel.target} did not connect to {count} servers")


async def all_answer(call: Call, request: bytes, servers: Iterable[ChildServer]) -> None:
    """Call with ``wait_for_ready`` until each of ``servers`` has answered once (their replies are
    their names); at most MAX_ANSWER_CALLS calls and READY_TIMEOUT s."""
    silent = {server.name.encode() for server in servers}

    async def until_each_answered() -> None:
        calls = 0
        while silent and calls < MAX_ANSWER_CALLS:
            calls += 1
            silent.discard(await call(request, timeout=READY_TIMEOUT, wait_for_ready=True))

    with contextlib.suppress(asyncio.TimeoutError):  # 3.10: not TimeoutError
        await asyncio.wait_for(until_each_answered(), READY_TIMEOUT)
    if silent:
        raise RuntimeError(f"bench: servers {sorted(silent)} never answered")


async def _cancelled(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel those of ``tasks`` still running and wait until all have ended."""
    chosen = list(tasks)
    for task in chosen:
        task.cancel()
    await asyncio.gather(*chosen, return_exceptions=True)


async def ended(awaitables: Iterable[Awaitable[Any]], timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``awaitables`` (tasks); cancel the rest. True if all ended."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    await _cancelled(pending)
    return not pending
