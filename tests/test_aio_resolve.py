"""naming.aio.resolve: the sync backends' watchers, awaited without blocking the loop, and a
backend's native asyncio watcher."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest

import naming
import naming.aio
from backends.manual import ManualResolver
from naming import Update
from naming.core import (
    BackendUnavailableError,
    PluginRegistry,
    Target,
    TargetError,
    UnknownSchemeError,
    WatcherClosedError,
)
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT
from naming.testing.aio import run
from naming.testing.etcd import EtcdServer


@pytest.fixture
def manual() -> Iterator[tuple[ManualResolver, str]]:
    name = f"aio-{uuid.uuid4().hex[:12]}"
    with ManualResolver(["10.0.0.1:1"], name=name) as resolver:
        yield resolver, f"manual:///{name}"


def watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("naming-aio-watch-")]


def test_the_snapshot_comes_first_then_each_batch(manual: tuple[ManualResolver, str]) -> None:
    resolver, target = manual

    async def main() -> None:
        async with naming.aio.resolve(target) as watcher:
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.add("10.0.0.1:1")]
            resolver.update([Update.add("10.0.0.2:1")])
            resolver.update([Update.delete("10.0.0.1:1")])
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.add("10.0.0.2:1")]
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.delete("10.0.0.1:1")]
            assert len(watch_threads()) == 1  # one thread per watcher, not one per call
        assert watcher.closed
        assert resolver.watchers == 0  # closing it released the resolver's watcher

    run(main())


def test_a_timeout_returns_an_empty_batch_and_loses_nothing(
    manual: tuple[ManualResolver, str],
) -> None:
    resolver, target = manual

    async def main() -> None:
        async with naming.aio.resolve(target) as watcher:
            assert await watcher.next() == [Update.add("10.0.0.1:1")]
            assert await watcher.next(SHORT_TIMEOUT) == []
            assert await watcher.next(0) == []
            assert await watcher.next(float("-inf")) == []
            resolver.update([Update.add("10.0.0.3:1")])
            assert await watcher.next(float("inf")) == [Update.add("10.0.0.3:1")]

    run(main())


def test_the_loop_keeps_running_while_a_next_waits(manual: tuple[ManualResolver, str]) -> None:
    resolver, target = manual

    async def main() -> None:
        async with naming.aio.resolve(target) as watcher:
            await watcher.next()
            waiting = asyncio.ensure_future(watcher.next(DEFAULT_TIMEOUT))
            ticks = 0
            for _ in range(5):  # the loop is free: other coroutines run meanwhile
                await asyncio.sleep(0.001)
                ticks += 1
            assert ticks == 5
            assert not waiting.done()
            resolver.update([Update.add("10.0.0.4:1")])
            assert await waiting == [Update.add("10.0.0.4:1")]

    run(main())


def test_close_ends_a_waiting_next_at_once(manual: tuple[ManualResolver, str]) -> None:
    _, target = manual

    async def main() -> None:
        watcher = naming.aio.resolve(target)
        await watcher.next()
        waiting = asyncio.ensure_future(watcher.next())  # no timeout: only close() ends it
        await asyncio.sleep(SHORT_TIMEOUT)
        await watcher.close()
        with pytest.raises(
            WatcherClosedError, match=r"aio: the watcher of manual:///aio-.* closed"
        ):
            await asyncio.wait_for(waiting, DEFAULT_TIMEOUT)
        with pytest.raises(WatcherClosedError):
            await watcher.next()
        await watcher.close()  # idempotent
        assert watch_threads() == []

    run(main())


def test_two_closes_at_once_both_wait_for_the_one_close(
    manual: tuple[ManualResolver, str],
) -> None:
    resolver, target = manual

    async def main() -> None:
        watcher = naming.aio.resolve(target)
        await watcher.next()
        await asyncio.gather(watcher.close(), watcher.close())
        assert resolver.watchers == 0
        assert watch_threads() == []

    run(main())


def test_a_cancelled_next_loses_no_update(manual: tuple[ManualResolver, str]) -> None:
    resolver, target = manual

    async def main() -> None:
        async with naming.aio.resolve(target) as watcher:
            await watcher.next()
            waiting = asyncio.ensure_future(watcher.next())
            await asyncio.sleep(SHORT_TIMEOUT)  # the thread now waits in the sync next()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            resolver.update([Update.add("10.0.0.5:1")])  # arrives for the cancelled call
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.add("10.0.0.5:1")]
            assert len(watch_threads()) == 1

    run(main())


def test_async_for_yields_batches_until_the_watcher_is_closed(
    manual: tuple[ManualResolver, str],
) -> None:
    resolver, target = manual

    async def main() -> None:
        watcher = naming.aio.resolve(target)
        seen: list[list[Update]] = []
        async for batch in watcher:
            seen.append(batch)
            if len(seen) == 1:
                resolver.update([Update.add("10.0.0.6:1")])
            else:
                await watcher.close()
        assert seen == [[Update.add("10.0.0.1:1")], [Update.add("10.0.0.6:1")]]

    run(main())


def test_bad_targets_and_timeouts_raise_what_the_sync_resolve_raises() -> None:
    for target, error in [("nope:///x", UnknownSchemeError), ("manual://", TargetError)]:
        with pytest.raises(error) as sync:
            naming.resolve(target)
        with pytest.raises(error) as aio:
            naming.aio.resolve(target)
        assert str(aio.value) == str(sync.value)

    async def main() -> None:
        name = f"aio-{uuid.uuid4().hex[:12]}"
        with ManualResolver(name=name):
            async with naming.aio.resolve(f"manual:///{name}") as watcher:
                with pytest.raises(TypeError, match=r"aio: timeout must be a number .* got str"):
                    await watcher.next("1")  # type: ignore[arg-type]
                with pytest.raises(ValueError, match=r"aio: timeout must be a number .* got nan"):
                    await watcher.next(float("nan"))

    run(main())


def test_a_watcher_closed_unused_starts_no_thread(manual: tuple[ManualResolver, str]) -> None:
    resolver, target = manual

    async def main() -> None:
        watcher = naming.aio.resolve(target)
        assert "open" in repr(watcher)
        await watcher.close()
        assert "closed" in repr(watcher)
        assert resolver.watchers == 0

    run(main())
    assert watch_threads() == []


class _NativeWatcher:
    """A native asyncio watcher: a queue of batches, ended by close()."""

    def __init__(self, initial: list[Update]) -> None:
        self.batches: asyncio.Queue[list[Update]] = asyncio.Queue()
        self.batches.put_nowait(initial)
        self.closed = asyncio.Event()

    async def next(self, timeout: float | None = None) -> list[Update]:
        get = asyncio.ensure_future(self.batches.get())
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({get, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not get.done():
                get.cancel()  # Queue.get() cancelled before it took an item loses nothing
        if get.done() and not get.cancelled():
            return get.result()
        if self.closed.is_set():
            raise WatcherClosedError("native: closed")
        return []

    async def close(self) -> None:
        self.closed.set()


class _NativeBackend(naming.Backend):
    schemes = ("native",)

    def __init__(self) -> None:
        self.watchers: list[_NativeWatcher] = []

    def build(self, target: Target, **options: object) -> naming.Resolver:
        raise AssertionError("naming.aio.resolve must not build a sync resolver here")

    def aio_resolve(self, target: Target, **options: object) -> _NativeWatcher:
        watcher = _NativeWatcher([Update.add(f"{target.endpoint}:{options['port']}")])
        self.watchers.append(watcher)
        return watcher


def test_a_backend_with_a_native_asyncio_watcher_is_used_as_it_is(
    fresh_registry: PluginRegistry,
) -> None:
    backend = _NativeBackend()

    class Plugin:
        @naming.hookimpl
        def naming_register_backends(self, register: object) -> None:
            register(backend)  # type: ignore[operator]

    fresh_registry.add_plugin(Plugin(), name="native")

    async def main() -> None:
        async with naming.aio.resolve("native:///10.9.9.9", port=7) as watcher:
            assert await watcher.next() == [Update.add("10.9.9.9:7")]
            assert await watcher.next(SHORT_TIMEOUT) == []
            (native,) = backend.watchers
            await native.batches.put([Update.delete("10.9.9.9:7")])
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.delete("10.9.9.9:7")]
        assert native.closed.is_set()
        assert watch_threads() == []  # no thread for a native watcher

    run(main())


def test_the_etcd_backend_adds_and_deletes_through_the_aio_watcher(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    target = f"etcd://{etcd_server.endpoint}/svc?prefix={etcd_prefix}"

    async def main() -> None:
        async with naming.aio.resolve(target) as watcher:
            assert await watcher.next(DEFAULT_TIMEOUT) == []
            registration = await asyncio.to_thread(naming.register, target, "10.1.1.1:50051")
            try:
                assert await watcher.next(DEFAULT_TIMEOUT) == [Update.add("10.1.1.1:50051")]
            finally:
                await asyncio.to_thread(registration.close)
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.delete("10.1.1.1:50051")]

    run(main())


class _FailingBackend(naming.Backend):
    """A sync backend whose watchers the test can make give up (QueueWatcher.fail)."""

    schemes = ("failing",)

    def __init__(self) -> None:
        self.watchers: list[naming.QueueWatcher] = []

    def build(self, target: Target, **options: object) -> naming.Resolver:
        backend = self

        class Resolver(naming.Resolver):
            def resolve(self, target: Target | str) -> naming.Watcher:
                watcher = naming.QueueWatcher([Update.add("10.7.7.7:1")], name="failing")
                backend.watchers.append(watcher)
                return watcher

        return Resolver()


def test_the_backend_giving_up_reaches_the_awaiting_next(fresh_registry: PluginRegistry) -> None:
    backend = _FailingBackend()

    class Plugin:
        @naming.hookimpl
        def naming_register_backends(self, register: object) -> None:
            register(backend)  # type: ignore[operator]

    fresh_registry.add_plugin(Plugin(), name="failing")

    async def main() -> None:
        async with naming.aio.resolve("failing:///svc") as watcher:
            assert await watcher.next() == [Update.add("10.7.7.7:1")]
            waiting = asyncio.ensure_future(watcher.next())
            await asyncio.sleep(SHORT_TIMEOUT)
            (sync,) = backend.watchers
            sync.fail(BackendUnavailableError("failing: the registry is gone"))
            with pytest.raises(BackendUnavailableError, match="failing: the registry is gone"):
                await asyncio.wait_for(waiting, DEFAULT_TIMEOUT)
            with pytest.raises(BackendUnavailableError):  # again, as the sync watcher does
                await watcher.next(DEFAULT_TIMEOUT)
        assert sync.closed

    run(main())
