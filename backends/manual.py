"""manual: a resolver whose updates the program pushes (grpc-go ``resolver/manual``).

It is the test fake for everything that consumes a resolver, and a real backend for programs that
know their addresses themselves. A resolver created with ``name="svc"`` is published in this process
as ``manual:///svc``: ``naming.resolve``, ``naming.register`` and ``naming.dial`` then reach it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from naming.core import (
    Address,
    Backend,
    BackendUnavailableError,
    NamingError,
    Operation,
    QueueWatcher,
    Registration,
    Resolver,
    Target,
    Update,
    diff,
    hookimpl,
)

__all__ = ["ManualBackend", "ManualRegistration", "ManualResolver"]

_published: dict[str, ManualResolver] = {}
_published_lock = threading.Lock()


class ManualResolver(Resolver):
    """Every watcher first gets the current set, then each batch pushed after it was created.

    ``update()`` delivers its batch unchanged (duplicates and unknown DELETEs included), so tests can
    drive a balancer exactly; ``set_addresses()`` sends the difference to the current set. Both are
    thread-safe and validate the whole input before anything changes.
    """

    def __init__(self, initial: Iterable[Address | str] = (), *, name: str | None = None) -> None:
        self._lock = threading.Lock()
        # An ordered set: an update costs O(batch), not O(addresses).
        self._addresses: dict[Address, None] = dict.fromkeys(map(Address.of, initial))
        self._watchers: list[QueueWatcher] = []
        self._closed = False
        self._registered: Counter[Address] = Counter()  # live registrations of each address
        self._registered_lock = threading.Lock()
        self.name = name
        if name is not None:
            with _published_lock:
                if name in _published:
                    raise NamingError(f"manual: a resolver is already published as {name!r}")
                _published[name] = self

    @classmethod
    def published(cls, name: str) -> ManualResolver:
        """The open resolver created with ``name=name``."""
        with _published_lock:
            resolver = _published.get(name)
        if resolver is None:
            raise BackendUnavailableError(
                f"manual: no resolver is published as {name!r}; create ManualResolver(name={name!r})"
            )
        return resolver

    @property
    def addresses(self) -> list[Address]:
        with self._lock:
            return list(self._addresses)

    @property
    def watchers(self) -> int:
        """How many watchers are open."""
        with self._lock:
            return len(self._watchers)

    def resolve(self, target: Target | str = "manual:///") -> QueueWatcher:
        created: list[QueueWatcher] = []

        def forget() -> None:
            with self._lock:
                if created and created[0] in self._watchers:
                    self._watchers.remove(created[0])

        with self._lock:
            self._check_open()
            initial = [Update.add(a) for a in self._addresses]
            watcher = QueueWatcher(initial, name="manual", on_close=forget)
            created.append(watcher)
            self._watchers.append(watcher)
        return watcher

    def update(self, updates: Iterable[Update]) -> None:
        """Push one batch to every watcher, as it is, and apply it to the current set."""
        batch = list(updates)
        for position, update in enumerate(batch):
            if not isinstance(update, Update):
                raise TypeError(
                    f"manual: update {position} is a {type(update).__name__}, not a naming.Update"
                )
        with self._lock:
            self._check_open()
            for update in batch:  # as apply_updates(): duplicate ADD and unknown DELETE ignored
                if update.op is Operation.ADD:
                    self._addresses.setdefault(update.address)
                else:
                    self._addresses.pop(update.address, None)
            for watcher in self._watchers:
                watcher.push(batch)

    def set_addresses(self, addresses: Iterable[Address | str]) -> None:
        """Replace the whole set; watchers get the difference as one batch (nothing if equal)."""
        new = list(dict.fromkeys(map(Address.of, addresses)))
        with self._lock:
            self._check_open()
            batch = diff(list(self._addresses), new)
            self._addresses = dict.fromkeys(new)
            if batch:
                for watcher in self._watchers:
                    watcher.push(batch)

    def close(self) -> None:
        """Close every watcher and unpublish the name. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher.close()
        if self.name is not None:
            with _published_lock:
                if _published.get(self.name) is self:
                    del _published[self.name]

    def _check_open(self) -> None:
        if self._closed:
            raise NamingError("manual: resolver is closed")

    def _count_registration(self, address: Address, change: int) -> None:
        """One registration of ``address`` more (+1) or less (-1): the first adds the address,
        the last one to go deletes it, so that there is one record per address registered."""
        with self._registered_lock:
            count = self._registered[address] + change
            if count == 1 and change > 0:
                self.update([Update.add(address)])
            elif count == 0:
                self.update([Update.delete(address)])
            if count:
                self._registered[address] = count
            else:
                del self._registered[address]

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<ManualResolver{label} {len(self._addresses)} addresses>"


class ManualRegistration(Registration):
    """Adds an address to a published manual resolver; ``close()`` deletes it again.

    Registrations of one address share its one record: the first adds it, the last one closed or
    paused deletes it.
    """

    def __init__(self, resolver: ManualResolver, address: Address) -> None:
        self.address = address
        self._resolver = resolver
        self._lock = threading.Lock()
        self._closed = False
        self._paused = False
        resolver._count_registration(address, +1)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._paused:
                self._resolver._count_registration(self.address, -1)

    def pause(self) -> None:
        with self._lock:
            self._check_open()
            if not self._paused:
                self._paused = True
                self._resolver._count_registration(self.address, -1)

    def resume(self) -> None:
        with self._lock:
            self._check_open()
            if self._paused:
                self._paused = False
                self._resolver._count_registration(self.address, +1)

    def _check_open(self) -> None:
        if self._closed:
            raise NamingError(f"manual: registration of {self.address.addr} is closed")


class _Borrowed(Resolver):
    """A published resolver handed out by naming.resolve(): closing the view leaves it open."""

    def __init__(self, resolver: ManualResolver) -> None:
        self._resolver = resolver

    def resolve(self, target: Target | str) -> QueueWatcher:
        return self._resolver.resolve(target)


class ManualBackend(Backend):
    schemes = ("manual",)

    def build(self, target: Target, **options: Any) -> Resolver:
        if options:
            raise TypeError(f"manual: takes no options, got {sorted(options)}")
        return _Borrowed(ManualResolver.published(target.endpoint))

    def register(
        self, target: Target, address: Address, *, ttl: float, **options: Any
    ) -> Registration:
        if options:
            raise TypeError(f"manual: registration takes no options, got {sorted(options)}")
        return ManualRegistration(ManualResolver.published(target.endpoint), address)


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(ManualBackend())
