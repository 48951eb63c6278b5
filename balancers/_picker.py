"""PickerBalancer: the legacy bookkeeping once, with picking delegated to immutable picker snapshots.

Every change (a batch from the watcher, ``up()``, ``down()``) updates the list and the sorted list of
ready addresses in O(log n) and marks the snapshot stale; the first ``get()`` after it builds a new
snapshot under the lock, with a Picker from ``build_picker()`` only if the ready addresses changed
(so a policy's position survives unrelated churn), or when the policy asked for it (``rebuild()``).
Every other ``get()`` reads the current snapshot and asks its picker, with no I/O and no lock. A new
policy writes ``build_picker()``, and ``new_address_state()`` if it keeps statistics per address.

The ready list (``balancers._ready``) is kept in blocks, so that a change copies about 2 * sqrt(n)
references rather than n.
"""

from __future__ import annotations

import bisect
import inspect
import itertools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from naming.core import (
    Address,
    BalancerClosedError,
    DeadlineExceededError,
    NamingError,
    NoAddressAvailableError,
    Operation,
    Resolver,
    Update,
    as_timeout,
)

from ._balancer import Balancer, BalancerConfig, Down, PickInfo, Put
from ._notify import Notifications
from ._ready import Joined, ReadyList
from ._resolving import ResolverLoop
from ._select import AddressFilter, Selection
from ._store import AddressStates, NoStates

__all__ = ["Picker", "PickerBalancer", "PickerState"]


_JOIN_TIMEOUT = 5.0


class Picker(ABC):
    """An immutable view of the ready addresses that chooses one per RPC.

    ``pick()`` is only called when at least one address is ready; it must be thread-safe and cheap.
    """

    @abstractmethod
    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        """The address for one RPC and an optional ``put``; ``info`` describes the call, if known."""


@dataclass(frozen=True)
class PickerState:
    """What ``build_picker()`` gets: the ready addresses and a view of the whole list.

    ``ready`` holds the connected addresses in list order and ``positions`` their positions in the
    list (increasing numbers, not indexes); ``states`` the per-address states of ``ready``
    (``PickerBalancer.new_address_state``), aligned with it, all None for a policy without state.
    All three are immutable sequences, tuples for short lists, that a picker may keep.
    ``position(address)`` gives any listed address's position (None when it is not listed) and
    ``is_ready(address)`` whether it is connected: both O(1), and valid only during the
    ``build_picker()`` call.
    """

    ready: Sequence[Address]
    positions: Sequence[int]
    position: Callable[[Address], int | None]
    is_ready: Callable[[Address], bool]
    states: Sequence[Any] = ()

    def __post_init__(self) -> None:
        if not self.states and self.ready:  # built without states: one None per address
            object.__setattr__(self, "states", NoStates(len(self.ready)))

    def index_after(self, position: int) -> int:
        """The index in ``ready`` of the first ready address after ``position`` in list order
        (``len(ready)`` when there is none). O(log n)."""
        if isinstance(self.positions, Joined):
            return self.positions.bisect_right(position)
        return bisect.bisect_right(self.positions, position)


PickFunction = Callable[[PickInfo | None], tuple[Address, Put | None]]


def _pick_function(picker: Picker) -> PickFunction:
    """``picker.pick``, or for a picker written before ``pick()`` took the call's ``info``, a
    function that drops it: third-party pickers of that shape keep working."""
    try:
        inspect.signature(picker.pick).bind(None)
    except TypeError:
        legacy = picker.pick
        return lambda info: legacy()
    except ValueError:  # no signature to read (a builtin): trust the documented shape
        pass
    return picker.pick


@dataclass(frozen=True)
class _Snapshot:
    pick: PickFunction | None  # None: nothing is ready
    total: int  # how many addresses are listed
    unready: tuple[Address, ...] = ()  # the list, kept only when nothing is ready
    rotation: itertools.count[int] = field(default_factory=itertools.count)


class PickerBalancer(Balancer):
    """The legacy balancer contract; subclasses implement ``build_picker()`` and set ``name``.

    Bookkeeping follows grpc-go's v1 roundRobin: insertion order, a duplicate ADD skipped, a DELETE
    of an unknown address ignored, the new list published after every watcher batch together with
    what the batch really changed (``Notifications.publish_changes``). Applying an update costs
    O(log n) whatever the number of addresses: the ready list is kept sorted as it changes, the
    snapshot is rebuilt on the first ``get()`` after a change, and a reader of full lists
    (``notify().get()``) copies the list when it reads; one of changes (``changes()``) pays
    O(changes).

    A policy that overrides ``new_address_state()`` gets one state per listed address: made when
    the address is added, kept through every picker rebuild, dropped when it is deleted (a re-ADD
    after that makes a fresh one; a duplicate ADD keeps the existing one).
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        subset_size: int | None = None,
        client_index: int | None = None,
        client_count: int | None = None,
        client_id: str | None = None,
        filter: AddressFilter | None = None,
        filter_fallback: bool = False,
    ) -> None:
        options: dict[str, Any] = {
            "subset_size": subset_size,
            "client_index": client_index,
            "client_count": client_count,
            "client_id": client_id,
            "filter": filter,
            "filter_fallback": filter_fallback,
        }
        name = self.name or type(self).__name__
        self._selection = Selection(name, **options) if Selection.wanted(**options) else None
        self._resolver = resolver
        self._cond = threading.Condition()
        self._addrs: dict[Address, int] = {}  # insertion order; value: position in the list
        self._positions = itertools.count()
        self._up: set[Address] = set()
        self._ready: ReadyList[Address] = ReadyList()  # connected, in list order, with positions
        stateful = type(self).new_address_state is not PickerBalancer.new_address_state
        self._states = AddressStates(self.new_address_state) if stateful else None
        self._ready_changed = False
        self._snapshot: _Snapshot | None = _Snapshot(None, 0)
        self._last_picker: Picker | None = None
        self._last_pick: PickFunction | None = None
        self._notifications = Notifications(self.name) if resolver is not None else None
        self._loop: ResolverLoop | None = None
        self._log = logging.getLogger(f"naming.balancers.{self.name or type(self).__name__}")
        self._started = False
        self._closed = False
        self.config = BalancerConfig()

    @abstractmethod
    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        """Build the picker for the ready addresses in ``state`` (never empty).

        ``previous`` is the picker being replaced, if any, so that a policy can carry its position
        or its choice over.
        """

    def new_address_state(self, address: Address) -> Any:
        """The state to keep for ``address`` while it is listed (counters, latency statistics).

        Called under the balancer's lock when the address is added: it must be cheap, must not
        raise and must not call the balancer. The default makes none (None), and a policy that
        does not override it pays nothing for the store.
        """
        return None

    def address_state(self, address: Address) -> Any:
        """The state of the listed ``address``; raises KeyError when it is not listed."""
        with self._cond:
            if self._states is not None:
                return self._states[address]
            if address not in self._addrs:
                raise KeyError(address)
            return None

    def rebuild(self) -> None:
        """Have the next ``get()`` build a new picker even if the ready addresses did not change
        (for a policy whose weights changed). Thread-safe and cheap: it only marks the snapshot
        stale; calls before that ``get()`` cost one rebuild in all. Not from ``build_picker()``.
        """
        with self._cond:
            self._changed(ready=True)

    # -- the legacy interface ------------------------------------------------------------------

    def start(self, target: str, config: BalancerConfig | None = None) -> None:
        with self._cond:
            self._check_open()
            if self._started:
                raise NamingError(f"{self.name}: start() was already called")
            self._started = True
            self.config = config or BalancerConfig()
            if self._resolver is None:
                self._list(Address(target))
                self._snapshot = None
                return
        watcher = self._resolver.resolve(target)
        with self._cond:
            if self._closed:
                watcher.close()
                raise BalancerClosedError(f"{self.name}: balancer is closed")
            self._loop = ResolverLoop(
                self.name, self._resolver, target, watcher, self._take, logger=self._log
            )

    def up(self, addr: Address) -> Down | None:
        with self._cond:
            position = self._addrs.get(addr)
            if addr in self._up:
                return None
            if position is not None:
                self._up.add(addr)
                self._ready.add(position, addr)
                if self._states is not None:
                    self._states.up(position, addr)
                self._changed(ready=True)
                if len(self._ready) == 1:
                    self._cond.notify_all()

        def down(err: BaseException | None = None) -> None:
            self._down(addr, err)

        return down

    def get(
        self,
        *,
        blocking_wait: bool = False,
        timeout: float | None = None,
        info: PickInfo | None = None,
    ) -> tuple[Address, Put | None]:
        snapshot = self._snapshot or self._current()
        if self._closed:
            raise BalancerClosedError(f"{self.name}: balancer is closed")
        if snapshot.pick is not None:
            return snapshot.pick(info)
        if not blocking_wait:
            if not snapshot.total:
                raise NoAddressAvailableError(f"{self.name}: there is no address available")
            index = next(snapshot.rotation) % snapshot.total
            return snapshot.unready[index], None
        return self._wait_for_ready(timeout, info)

    def notify(self) -> Notifications | None:
        return self._notifications

    def close(self) -> None:
        with self._cond:
            self._check_open()
            self._closed = True
            self._cond.notify_all()
            loop = self._loop
        if self._notifications is not None:
            self._notifications.close()
        if loop is not None:
            loop.close()

    @property
    def addresses(self) -> list[Address]:
        """The current address list, in order."""
        with self._cond:
            return list(self._addrs)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._ready)}/{len(self._addrs)} ready"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BalancerClosedError(f"{self.name}: balancer is closed")

    def _down(self, addr: Address, err: BaseException | None) -> None:
        with self._cond:
            if addr in self._up:
                self._unready(addr, self._addrs[addr])
                self._changed(ready=True)
        if err is not None:
            self._log.debug("%s: %s went down: %s", self.name, addr.addr, err)

    def _unready(self, addr: Address, position: int) -> None:
        self._up.discard(addr)
        self._ready.remove(position)
        if self._states is not None:
            self._states.down(position)

    def _list(self, address: Address) -> None:
        self._addrs[address] = next(self._positions)
        if self._states is not None:
            self._states.listed(address)

    def _changed(self, *, ready: bool) -> None:
        """Under the lock: the snapshot is stale; build it again on the next get()."""
        self._snapshot = None
        self._ready_changed = self._ready_changed or ready

    def _current(self) -> _Snapshot:
        with self._cond:
            if self._snapshot is None:
                self._snapshot = self._build_snapshot()
            return self._snapshot

    def _build_snapshot(self) -> _Snapshot:
        if not self._ready:
            return _Snapshot(None, len(self._addrs), tuple(self._addrs))
        if self._ready_changed or self._last_picker is None:
            ready, positions = self._ready.freeze()
            states = NoStates(len(ready)) if self._states is None else self._states.freeze()
            state = PickerState(ready, positions, self._addrs.get, self._up.__contains__, states)
            self._last_picker = self.build_picker(state, self._last_picker)
            self._last_pick = _pick_function(self._last_picker)
            self._ready_changed = False
        return _Snapshot(self._last_pick, len(self._addrs))

    def _wait_for_ready(
        self, timeout: float | None, info: PickInfo | None
    ) -> tuple[Address, Put | None]:
        with self._cond:
            if not self._cond.wait_for(self._ready_or_closed, as_timeout(timeout, self.name)):
                raise DeadlineExceededError(
                    f"{self.name}: no address became ready within {timeout:.3g}s"
                )
            self._check_open()
            pick = self._current().pick
            assert pick is not None
            return pick(info)

    def _ready_or_closed(self) -> bool:
        return self._closed or bool(self._ready)

    @property
    def resolver_error(self) -> BaseException | None:
        """The last error of the resolver's watcher while it is being resolved again, else None."""
        loop = self._loop
        return None if loop is None else loop.error

    def _take(self, updates: list[Update], replace: bool) -> None:
        """A batch from the resolver loop; ``replace``: a new watcher's whole set."""
        notifications = self._notifications
        assert notifications is not None
        with self._cond:
            if self._closed:
                return
            if self._selection is not None:  # the filter and the subset: a diff of the selection
                updates = self._selection.updates(updates, replace, self._addrs)
                replace = False
            if replace:
                wanted = {u.address for u in updates if u.op is Operation.ADD}
                gone = [Update.delete(a) for a in self._addrs if a not in wanted]
                updates = gone + updates
            added, removed = self._apply(updates)
            if self._log.isEnabledFor(logging.DEBUG):
                adds = sum(u.op is Operation.ADD for u in updates)
                self._log.debug(
                    "%s: resolver update: %d ADD, %d DELETE%s; %d listed",
                    self.name,
                    adds,
                    len(updates) - adds,
                    " (a new watcher's whole set)" if replace else "",
                    len(self._addrs),
                )
        notifications.publish_changes(added, removed, self._address_list)

    def _address_list(self) -> list[Address]:
        with self._cond:
            return list(self._addrs)

    def _apply(self, updates: list[Update]) -> tuple[list[Address], list[Address]]:
        """Apply ``updates`` to the list; the addresses it really added and removed, in order."""
        ready_changed = False
        added: list[Address] = []
        removed: list[Address] = []
        for update in updates:
            address = update.address
            if update.op is Operation.ADD:
                if address in self._addrs:
                    self._log.info("%s: wanted to add an existing address %s", self.name, address)
                    continue
                self._list(address)
                added.append(address)
            else:
                position = self._addrs.pop(address, None)
                if position is None:
                    continue
                removed.append(address)
                if address in self._up:
                    self._unready(address, position)
                    ready_changed = True
                if self._states is not None:
                    self._states.unlisted(address)
        self._changed(ready=ready_changed)
        return added, removed
