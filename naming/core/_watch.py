"""Ready-made watchers for backends: one fed with batches, one fed with whole address sets."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from ..errors import NamingError, WatcherClosedError
from ._resolver import Watcher
from ._timeouts import as_timeout
from ._types import Address, Operation, Update, updates_of

__all__ = ["QueueWatcher", "SnapshotWatcher"]


class _BaseWatcher(Watcher):
    """Locking, timeouts, close and failure shared by the two watchers below."""

    def __init__(self, name: str, on_close: Callable[[], None] | None) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._closed = False
        self._error: NamingError | None = None
        self._on_close = on_close

    def _ready(self) -> bool:
        raise NotImplementedError

    def _take(self) -> list[Update]:
        raise NotImplementedError

    def next(self, timeout: float | None = None) -> list[Update]:
        with self._cond:
            # wait_for() checks first, then waits out what is left of ``timeout`` (None: for
            # ever; zero or less: not at all); an empty batch means the time ran out.
            self._cond.wait_for(self._settled, as_timeout(timeout, self._name))
            if self._closed:
                raise WatcherClosedError(f"{self._name}: watcher is closed")
            if self._ready():
                return self._take()
            if self._error is not None:
                raise self._error
            return []

    def _settled(self) -> bool:
        return self._closed or self._error is not None or self._ready()

    def fail(self, error: NamingError) -> None:
        """Report that the backend gave up: next() raises ``error`` once pending updates are read."""
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._on_close is not None:
            self._on_close()

    @property
    def closed(self) -> bool:
        return self._closed


class QueueWatcher(_BaseWatcher):
    """A watcher fed batch by batch: each ``push()`` is returned, unchanged, by one ``next()``.

    For backends that receive deltas (and for the manual resolver). ``push()`` is thread-safe and is
    ignored once the watcher is closed. ``on_close`` runs once, after the first ``close()``.
    """

    def __init__(
        self,
        initial: Iterable[Update] = (),
        *,
        name: str = "watcher",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, on_close)
        self._batches: deque[list[Update]] = deque([list(initial)])

    def push(self, batch: Iterable[Update]) -> None:
        batch = list(batch)
        with self._cond:
            if self._closed:
                return
            self._batches.append(batch)
            self._cond.notify_all()

    def _ready(self) -> bool:
        return bool(self._batches)

    def _take(self) -> list[Update]:
        return self._batches.popleft()


class SnapshotWatcher(_BaseWatcher):
    """A watcher fed whole address sets: ``next()`` returns the difference to what it returned before.

    For backends that see full snapshots (static lists, DNS answers, ZooKeeper children, Consul health
    results) or keep a set up to date from events (etcd). Nothing is returned before the first
    ``publish()``; the first ``next()`` after it returns the whole set as ADDs; later calls block until
    the set really changes. Changes that cancel out before the consumer reads them are never seen,
    which is what a balancer wants. ``add()`` and ``discard()`` change one address in O(1).
    """

    def __init__(
        self,
        initial: Iterable[Address] | None = None,
        *,
        name: str = "watcher",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, on_close)
        self._latest: dict[Address, None] = {}
        self._published = False  # the set is known (first publish happened)
        self._delivered = False  # the first next() returned the whole set
        self._added: dict[Address, None] = {}  # pending ADDs since the last next()
        self._removed: dict[Address, None] = {}  # pending DELETEs since the last next()
        if initial is not None:
            self.publish(initial)

    def publish(self, addresses: Iterable[Address]) -> None:
        """Replace the current set (order is kept, duplicates collapse). Thread-safe."""
        latest = dict.fromkeys(addresses)
        with self._cond:
            if self._closed:
                return
            if self._delivered:  # before that, nothing is pending but the set itself
                for address in [a for a in self._latest if a not in latest]:
                    self._discard(address)
                for address in latest:
                    self._add(address)
            self._latest = latest
            self._published = True
            self._cond.notify_all()

    def add(self, address: Address) -> None:
        """Add one address to the current set. Thread-safe."""
        with self._cond:
            if not self._closed and self._add(address):
                self._cond.notify_all()

    def discard(self, address: Address) -> None:
        """Remove one address from the current set, if it is there. Thread-safe."""
        with self._cond:
            if not self._closed and self._discard(address):
                self._cond.notify_all()

    @property
    def addresses(self) -> list[Address]:
        """The current set (empty before the first publish)."""
        with self._cond:
            return list(self._latest)

    def _add(self, address: Address) -> bool:
        if address in self._latest:
            return False
        self._latest[address] = None
        if self._delivered:
            if address in self._removed:
                del self._removed[address]
            else:
                self._added[address] = None
        return True

    def _discard(self, address: Address) -> bool:
        if address not in self._latest:
            return False
        del self._latest[address]
        if self._delivered:
            if address in self._added:
                del self._added[address]
            else:
                self._removed[address] = None
        return True

    def _ready(self) -> bool:
        return self._published and (not self._delivered or bool(self._added or self._removed))

    def _take(self) -> list[Update]:
        if not self._delivered:
            self._delivered = True
            return updates_of(Operation.ADD, self._latest)
        updates = updates_of(Operation.DELETE, self._removed)
        updates += updates_of(Operation.ADD, self._added)
        self._added, self._removed = {}, {}
        return updates
