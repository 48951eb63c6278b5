"""naming.aio.resolve(): a target's updates, awaited, from any backend, without blocking the loop.

A backend with a native asyncio watcher (``Backend.aio_resolve``, docs/plugins.md) is used as it
is. Every other backend's sync watcher runs in one thread of its own, ``naming-aio-watch-N``: the
thread makes the blocking ``next()`` call when a coroutine asks, and hands the batch back through
``loop.call_soon_threadsafe``. One call is in flight at a time; a caller that is cancelled or
runs out of time leaves it in flight, and the next ``next()`` takes its batch, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from types import TracebackType
from typing import Any

from naming.core import (
    AsyncWatcher,
    Target,
    Update,
    WatcherClosedError,
    as_target,
    as_timeout,
    registry,
)
from naming.core import Watcher as SyncWatcher
from naming.core import resolve as sync_resolve

__all__ = ["Watcher", "resolve"]

_numbers = itertools.count()
_JOIN = 10.0  # how long close() waits for the watcher thread to end


def resolve(target: Target | str, **options: Any) -> Watcher:
    """Start watching ``target``; ``await watcher.next()`` as with ``naming.resolve``'s watcher.

    The backend is picked by the URI scheme and gets ``options``, exactly as ``naming.resolve``
    does, and a bad target or option raises the same error here, at once. Call it with or
    without a running loop; the watcher belongs to the loop of its first ``next()``.
    """
    parsed = as_target(target)
    backend = registry().backend(parsed.scheme)
    backend.check_installed()
    native = backend.aio_resolve(parsed, **options)
    if native is not None:
        return Watcher(native, str(parsed))
    return Watcher(_Threaded(sync_resolve(parsed, **options), str(parsed)), str(parsed))


class Watcher:
    """The updates of one target, awaited: ``await next(timeout)``, ``async for``, ``async with``.

    ``next()`` keeps the contract of ``naming.Watcher.next``: the whole set first, then only
    what changed, ``[]`` when ``timeout`` passed first, WatcherClosedError once closed, the
    backend's error when it gave up. A ``next()`` that is cancelled loses nothing. ``async for``
    yields batches until the watcher is closed. ``await close()`` is idempotent, ends a waiting
    ``next()`` at once and releases the backend's resolver. Use it from one event loop.
    """

    def __init__(self, source: AsyncWatcher, name: str) -> None:
        self._source = source
        self._name = name
        self._closing: asyncio.Future[None] | None = None

    async def next(self, timeout: float | None = None) -> list[Update]:
        """Wait for the next batch of updates (``[]`` once ``timeout`` seconds have passed)."""
        seconds = as_timeout(timeout, "aio")
        if self._closing is not None:
            raise WatcherClosedError(f"aio: the watcher of {self._name} is closed")
        return await self._source.next(seconds)

    async def close(self) -> None:
        """Stop watching; a second call, even during the first, waits for the same close."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._source.close())
        await asyncio.shield(self._closing)

    @property
    def closed(self) -> bool:
        return self._closing is not None

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> list[Update]:
        try:
            return await self.next()
        except WatcherClosedError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<aio watcher {self._name} {'closed' if self.closed else 'open'} {self._source!r}>"


class _Threaded:
    """A sync watcher driven from one thread of its own: an AsyncWatcher for the loop."""

    def __init__(self, watcher: SyncWatcher, name: str) -> None:
        self._watcher = watcher
        self._name = name
        self._requests: queue.SimpleQueue[asyncio.Future[list[Update]] | None] = queue.SimpleQueue()
        self._pending: asyncio.Future[list[Update]] | None = None  # the call in flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    async def next(self, timeout: float | None = None) -> list[Update]:
        if self._closed:
            raise WatcherClosedError(f"aio: the watcher of {self._name} is closed")
        future = self._pending
        if future is None:
            future = self._pending = self._ask()
        if not future.done():
            if timeout is not None and timeout <= 0:
                return []
            try:  # shield: a caller that is cancelled or times out leaves the call in flight
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except asyncio.TimeoutError:
                return []
        self._pending = None
        return future.result()

    async def close(self) -> None:
        self._closed = True
        pending, self._pending = self._pending, None
        if pending is not None:
            if not pending.done():
                pending.set_exception(
                    WatcherClosedError(f"aio: the watcher of {self._name} is closed")
                )
            pending.exception()  # retrieved: nobody may be waiting for it any more
        self._requests.put(None)
        await asyncio.to_thread(self._close_sync)  # a registry client may take a moment to close

    def _ask(self) -> asyncio.Future[list[Update]]:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._serve, name=f"naming-aio-watch-{next(_numbers)}", daemon=True
            )
            self._thread.start()
        assert self._loop is not None
        future: asyncio.Future[list[Update]] = self._loop.create_future()
        self._requests.put(future)
        return future

    def _serve(self) -> None:
        # One request at a time, until close() sends None; closing the sync watcher ends a next().
        while (future := self._requests.get()) is not None:
            try:
                batch: list[Update] | None = self._watcher.next()
                error: BaseException | None = None
            except Exception as exc:
                batch, error = None, exc
            try:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(_settle, future, batch, error)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                return

    def _close_sync(self) -> None:
        self._watcher.close()
        if self._thread is not None:
            self._thread.join(_JOIN)

    def __repr__(self) -> str:
        return f"<in a thread: {self._watcher!r}>"


def _settle(
    future: asyncio.Future[list[Update]], batch: list[Update] | None, error: BaseException | None
) -> None:
    if future.done():  # close() got there first
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert batch is not None
        future.set_result(batch)
