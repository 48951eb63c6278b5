"""Testing asyncio code: a bounded runner that finds leaked tasks, and ``grpc.aio`` servers.

* :func:`run` runs a test's coroutine in a fresh event loop, within ``timeout``, and fails with
  AssertionError naming every task the coroutine left running (``asyncio.run`` would cancel them
  without a word). No pytest plugin is needed: a test calls ``run(main())``.
* :func:`tasks_left`: the tasks still running besides the caller, after a bounded wait.
* :class:`AioEchoServer`: the echo server of :mod:`naming.testing.servers` on ``grpc.aio``.
* :class:`AioHarness`: the servers and channels of one test, stopped and closed on exit, with a
  thread leak check; :func:`call_port` makes one PORT call on an aio channel.

This module imports asyncio and grpc; ``naming.testing`` itself does not import it (docs/testing.md,
"asyncio").
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from naming.core import DeadlineExceededError

from . import _wait, servers
from ._aio_server import AioEchoServer
from ._leaks import LEAK_GRACE as _LEAK_GRACE
from ._leaks import LeakCheck

__all__ = ["RUN_TIMEOUT", "AioEchoServer", "AioHarness", "call_port", "run", "tasks_left"]

_T = TypeVar("_T")

RUN_TIMEOUT = _wait.DEFAULT_TIMEOUT * 6
"""How long :func:`run` lets a test's coroutine run by default: one minute."""

_POLL = 0.01

_runners: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()  # run()'s tasks: not leaks


async def tasks_left(grace: float = _LEAK_GRACE) -> list[str]:
    """Wait up to ``grace`` seconds for the loop's other tasks to end; describe those that did not.

    "Other" means every task of the running loop but the one calling this and, under :func:`run`,
    the runner's own two (the runner and the test's coroutine). Each line is the task's repr (its
    name, its coroutine and where it waits). Empty when nothing is left.
    """
    deadline = asyncio.get_running_loop().time() + grace
    while True:
        mine = {asyncio.current_task(), *_runners}
        left = [task for task in asyncio.all_tasks() if task not in mine and not task.done()]
        if not left or asyncio.get_running_loop().time() >= deadline:
            return sorted(repr(task) for task in left)
        await asyncio.sleep(_POLL)


def run(
    main: Coroutine[Any, Any, _T], *, timeout: float = RUN_TIMEOUT, grace: float = _LEAK_GRACE
) -> _T:
    """Run ``main`` in a new event loop and return its result; fail on a task it left running.

    ``main`` gets ``timeout`` seconds (DeadlineExceededError, a TimeoutError, after that). Once it
    has returned, the other tasks get ``grace`` seconds to end; any still running then is named in
    an AssertionError (they are cancelled afterwards, as ``asyncio.run`` does). When ``main``
    raised, its error wins and the leftover tasks are only added as a note. The loop's default
    executor is shut down before the loop closes, so its threads are gone when ``run`` returns.
    """
    if not asyncio.iscoroutine(main):
        raise TypeError(f"testing: run() needs a coroutine, got {type(main).__name__}")
    return asyncio.run(_runner(main, timeout, grace))


async def _runner(main: Coroutine[Any, Any, _T], timeout: float, grace: float) -> _T:
    task = asyncio.ensure_future(main)
    _runners.update((task, asyncio.current_task()))  # type: ignore[arg-type]
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:  # the test's own TimeoutError (a DeadlineExceededError) is not this one
            task.cancel()
            await asyncio.wait({task}, timeout=grace)
            raise DeadlineExceededError(
                f"testing: run(): {getattr(main, '__qualname__', main)} did not finish within {timeout}s"
            )
        error = task.exception()
        if error is not None:
            left = await tasks_left(grace)
            if left and hasattr(error, "add_note"):
                error.add_note(f"testing: tasks still running: {'; '.join(left)}")
            raise error
        left = await tasks_left(grace)
        if left:
            raise AssertionError(f"testing: tasks still running after the test: {'; '.join(left)}")
        return task.result()
    finally:
        await asyncio.get_running_loop().shutdown_default_executor()


def _counted(thread: threading.Thread) -> bool:
    # Every thread counts but two kinds the event loop owns and ends when it closes (run() does
    # that): grpc.aio's poller and the loop's default executor (asyncio.to_thread).
    return "_poll_wrapper" not in thread.name and not thread.name.startswith("asyncio_")


class AioHarness:
    """The aio servers and channels of one test; on exit all are stopped, closed and checked.

    ``async with AioHarness(2) as harness`` starts servers ``s0`` and ``s1`` (``harness.servers``);
    ``await harness.start_servers(n)`` starts more. ``adopt(channel)`` takes a naming.aio channel
    (anything with ``await close()``; with ``subchannels()`` it is checked for leftover
    subchannels too). On exit the channels are closed, the servers stopped, and AssertionError
    lists every problem, including a thread started since the harness was made and still running
    after ``LEAK_GRACE`` seconds (grpc's and the servers' too, but not the loop's own).
    """

    def __init__(self, count: int = 0) -> None:
        self.servers: list[AioEchoServer] = []
        self.channels: list[Any] = []
        self._count = count
        self._leaks = LeakCheck(threads=_counted)

    async def start_servers(
        self, count: int, *, services: Callable[[AioEchoServer, Any], None] | None = None
    ) -> list[AioEchoServer]:
        """Start ``count`` servers named s0, s1, ... (numbered on from those already started)."""
        started = [
            AioEchoServer(f"s{len(self.servers) + i}", services=services) for i in range(count)
        ]
        self.servers.extend(started)  # before starting: close() stops whatever did start
        for server in started:
            await server.start()
        return started

    def adopt(self, channel: _T) -> _T:
        """Close ``channel`` at the end too; check its subchannels if it has ``subchannels()``."""
        self.channels.append(channel)
        if hasattr(channel, "subchannels"):
            self._leaks.track(channel)
        return channel

    async def close(self) -> None:
        problems = []
        for channel in self.channels:
            try:
                await channel.close()
            except Exception as exc:
                problems.append(f"closing {channel!r}: {exc!r}")
        for server in self.servers:
            await server.stop()
        deadline = asyncio.get_running_loop().time() + self._leaks.grace
        found = self._leaks.leaks()
        while found and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(_POLL)  # the loop runs meanwhile: what ends by a callback can end
            found = self._leaks.leaks()
        if found:
            problems.append(LeakCheck.describe(found))
        assert not problems, problems

    async def __aenter__(self) -> AioHarness:
        await self.start_servers(self._count)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def call_port(channel: Any, **kwargs: Any) -> str:
    """One PORT call on an aio channel: the name of the server that answered."""
    kwargs.setdefault("timeout", _wait.DEFAULT_TIMEOUT)
    return bytes(await channel.unary_unary(servers.PORT)(b"", **kwargs)).decode()
