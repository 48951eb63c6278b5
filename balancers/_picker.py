"""PickerBalancer: the legacy bookkeeping once, with picking delegated to immutable picker snapshots.

Every change (a batch from the watcher, ``up()``, ``down()``) rebuilds a snapshot under the lock:
the full list, the ready addresses in list order and a Picker built from them; when the ready
addresses did not change the picker is kept, so a policy's position survives unrelated churn.
``get()`` reads the current snapshot and asks its picker, with no I/O and no lock on the fast path.
A new policy only writes ``build_picker()``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from naming import (
    Address,
    BalancerClosedError,
    DeadlineExceededError,
    NamingError,
    NoAddressAvailableError,
    Operation,
    Resolver,
    Update,
    Watcher,
    WatcherClosedError,
)

from ._balancer import Balancer, BalancerConfig, Down, Put
from ._notify import Notifications

__all__ = ["Picker", "PickerBalancer"]

log = logging.getLogger(__name__)

_JOIN_TIMEOUT = 5.0


class Picker(ABC):
    """An immutable view of the ready addresses that chooses one per RPC.

    ``pick()`` is only called when at least one address is ready; it must be thread-safe and cheap.
    """

    @abstractmethod
    def pick(self) -> tuple[Address, Put | None]:
        """The address for one RPC and an optional ``put``."""


@dataclass(frozen=True)
class _Snapshot:
    addresses: tuple[Address, ...]
    ready: tuple[Address, ...]
    picker: Picker | None
    unready: itertools.count[int] = field(default_factory=itertools.count)


class PickerBalancer(Balancer):
    """The legacy balancer contract; subclasses implement ``build_picker()`` and set ``name``.

    Bookkeeping follows grpc-go's v1 roundRobin: insertion order, a duplicate ADD skipped, a DELETE
    of an unknown address ignored, a full copy of the list published after every watcher batch.
    """

    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolver = resolver
        self._cond = threading.Condition()
        self._addrs: dict[Address, bool] = {}  # insertion order; value: connected
        self._snapshot = _Snapshot((), (), None)
        self._last_picker: Picker | None = None
        self._notifications = Notifications(self.name) if resolver is not None else None
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._closed = False
        self.config = BalancerConfig()

    @abstractmethod
    def build_picker(
        self,
        ready: tuple[Address, ...],
        addresses: tuple[Address, ...],
        previous: Picker | None,
    ) -> Picker:
        """Build the picker for a non-empty ``ready`` tuple (in list order).

        ``addresses`` is the full list; ``previous`` is the picker being replaced, if any, so that a
        policy can carry its position or its choice over.
        """

    # -- the legacy interface ------------------------------------------------------------------

    def start(self, target: str, config: BalancerConfig | None = None) -> None:
        with self._cond:
            self._check_open()
            if self._started:
                raise NamingError(f"{self.name}: start() was already called")
            self._started = True
            self.config = config or BalancerConfig()
            if self._resolver is None:
                self._addrs[Address(target)] = False
                self._rebuild()
                return
        watcher = self._resolver.resolve(target)
        with self._cond:
            if self._closed:
                watcher.close()
                raise BalancerClosedError(f"{self.name}: balancer is closed")
            self._watcher = watcher
            self._thread = threading.Thread(
                target=self._watch, args=(watcher,), name=f"naming-watch-{self.name}", daemon=True
            )
            self._thread.start()

    def up(self, addr: Address) -> Down | None:
        with self._cond:
            connected = self._addrs.get(addr)
            if connected:
                return None
            if connected is not None:
                self._addrs[addr] = True
                self._rebuild()
                if len(self._snapshot.ready) == 1:
                    self._cond.notify_all()

        def down(err: BaseException | None = None) -> None:
            self._down(addr, err)

        return down

    def get(
        self, *, blocking_wait: bool = False, timeout: float | None = None
    ) -> tuple[Address, Put | None]:
        snapshot = self._snapshot
        if self._closed:
            raise BalancerClosedError(f"{self.name}: balancer is closed")
        if snapshot.picker is not None:
            return snapshot.picker.pick()
        if not blocking_wait:
            if not snapshot.addresses:
                raise NoAddressAvailableError(f"{self.name}: there is no address available")
            index = next(snapshot.unready) % len(snapshot.addresses)
            return snapshot.addresses[index], None
        return self._wait_for_ready(timeout)

    def notify(self) -> Notifications | None:
        return self._notifications

    def close(self) -> None:
        with self._cond:
            self._check_open()
            self._closed = True
            self._cond.notify_all()
            watcher, thread = self._watcher, self._thread
        if self._notifications is not None:
            self._notifications.close()
        if watcher is not None:
            watcher.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)

    @property
    def addresses(self) -> list[Address]:
        """The current address list, in order."""
        return list(self._snapshot.addresses)

    def __repr__(self) -> str:
        snapshot = self._snapshot
        state = (
            "closed" if self._closed else f"{len(snapshot.ready)}/{len(snapshot.addresses)} ready"
        )
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BalancerClosedError(f"{self.name}: balancer is closed")

    def _down(self, addr: Address, err: BaseException | None) -> None:
        with self._cond:
            if self._addrs.get(addr):
                self._addrs[addr] = False
                self._rebuild()
        if err is not None:
            log.debug("%s: %s went down: %s", self.name, addr.addr, err)

    def _wait_for_ready(self, timeout: float | None) -> tuple[Address, Put | None]:
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                self._check_open()
                picker = self._snapshot.picker
                if picker is not None:
                    return picker.pick()
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceededError(
                        f"{self.name}: no address became ready within {timeout}s"
                    )
                self._cond.wait(remaining)

    def _watch(self, watcher: Watcher) -> None:
        while True:
            try:
                updates = watcher.next()
            except WatcherClosedError:
                return
            except Exception as exc:
                log.warning("%s: the naming watcher stopped working: %s", self.name, exc)
                return
            with self._cond:
                if self._closed:
                    return
                self._apply(updates)
                self._rebuild()
                addresses = self._snapshot.addresses
            assert self._notifications is not None
            self._notifications.publish(addresses)

    def _apply(self, updates: list[Update]) -> None:
        for update in updates:
            address = update.address
            if update.op is Operation.ADD:
                if address in self._addrs:
                    log.info("%s: wanted to add an existing address %s", self.name, address)
                    continue
                self._addrs[address] = False
            else:
                self._addrs.pop(address, None)

    def _rebuild(self) -> None:
        addresses = tuple(self._addrs)
        ready = tuple(address for address, connected in self._addrs.items() if connected)
        picker = None
        if ready == self._snapshot.ready:
            picker = self._snapshot.picker  # same ready set: keep the picker and its position
        elif ready:
            picker = self._last_picker = self.build_picker(ready, addresses, self._last_picker)
        self._snapshot = _Snapshot(addresses, ready, picker)
