"""Resolver and Watcher: the contracts of the legacy grpc-go ``naming`` package, in Python."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from ..errors import WatcherClosedError
from ._closing import Closeable
from ._target import Target, parse_target
from ._types import Update

__all__ = ["AsyncWatcher", "Resolver", "Watcher", "WatchingResolver"]


class Watcher(Closeable, ABC):
    """Tracks the resolution of one target (legacy ``naming.Watcher``).

    Contract:

    * ``next()`` blocks until there are updates, the timeout passes, or the watcher is closed.
      The **first** call returns the whole current set as ADD updates (an empty list when the name
      has no address). Every later call returns only what changed since the previous call: ADDs and
      DELETEs, never an empty list except when ``timeout`` passed with nothing new.
    * ``next()`` raises only when the watcher cannot recover: :class:`WatcherClosedError` after
      ``close()``, or the backend's error when it gave up. Registry trouble that can be retried is
      retried inside the watcher, which keeps the last known set meanwhile.
    * ``next()`` is meant for one consumer thread. ``close()`` may be called from any thread at any
      time, more than once; it wakes a blocked ``next()``, which then raises WatcherClosedError.

    A watcher is iterable (one batch per step, until it is closed) and a context manager.
    """

    @abstractmethod
    def next(self, timeout: float | None = None) -> list[Update]:
        """Block for the next batch of updates; see the class docstring for the contract."""

    @abstractmethod
    def close(self) -> None:
        """Stop watching and release what the watcher holds. Idempotent and thread-safe."""

    def __iter__(self) -> Iterator[list[Update]]:
        while True:
            try:
                yield self.next()
            except WatcherClosedError:
                return


class Resolver(Closeable, ABC):
    """Creates watchers for targets (legacy ``naming.Resolver``).

    ``resolve()`` must not block on the network for long: it returns a Watcher whose ``next()`` does
    the waiting. It is thread-safe. A resolver that holds a registry client releases it in
    ``close()``; watchers already returned stop at that point too.
    """

    @abstractmethod
    def resolve(self, target: Target | str) -> Watcher:
        """Return a watcher that tracks ``target``."""

    def resolve_now(self) -> None:
        """A hint that the addresses may be stale: look again soon (grpc-go's ``ResolveNow``).

        The channel calls it when a subchannel goes to TRANSIENT_FAILURE. It must return at once,
        from any thread; a resolver rate-limits it as it sees fit (DNS: once per
        ``min_interval``). The default does nothing: a watching registry already knows.
        """

    def close(self) -> None:
        """Release the resolver's resources. Idempotent; the default holds nothing."""


class WatchingResolver(Resolver):
    """A resolver that makes a watcher of its own (with its own client) per ``resolve()``, and
    closes the ones still open in ``close()``: what every registry backend's resolver does.

    A subclass calls ``super().__init__()`` and writes ``_watch(service)``, which makes the watcher
    of the target's service (its endpoint: ``etcd://host/<service>``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: list[Watcher] = []

    @abstractmethod
    def _watch(self, service: str) -> Watcher:
        """A new watcher of ``service``."""

    def resolve(self, target: Target | str) -> Watcher:
        parsed = target if isinstance(target, Target) else parse_target(target)
        watcher = self._watch(parsed.endpoint)
        with self._lock:
            self._watchers = [w for w in self._watchers if not getattr(w, "closed", False)]
            self._watchers.append(watcher)
        return watcher

    def close(self) -> None:
        with self._lock:
            watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher.close()


@runtime_checkable
class AsyncWatcher(Protocol):
    """What a backend's native asyncio resolver returns (``Backend.aio_resolve``; docs/plugins.md).

    The Watcher contract, awaited: ``await next(timeout)`` returns the whole set first, then the
    changes, and ``[]`` when ``timeout`` passed (already checked: None, or a number of seconds);
    ``await close()`` is idempotent and ends a pending ``next()`` with WatcherClosedError at once.
    A ``next()`` cancelled while it waits must lose nothing: the next call gets those updates.
    ``naming.aio.resolve`` wraps it; the core itself never runs it, so it imports no asyncio.
    """

    async def next(self, timeout: float | None = None) -> list[Update]: ...

    async def close(self) -> None: ...
