"""Per-address state for policies that keep statistics: the store a PickerBalancer owns, and an
in-flight counter with the put that ends a call's count (the grpc-go ``leastrequest`` shape).

A policy makes one state per listed address (``PickerBalancer.new_address_state``). The state lives
as long as the address is listed, however often the picker is rebuilt, and is dropped on DELETE; a
picker gets the states of the ready addresses aligned with them (``PickerState.states``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from naming.core import Address

from ._balancer import DoneInfo, Put
from ._ready import ReadyList

__all__ = ["InFlight", "TrackedPut"]


class AddressStates:
    """The states of the listed addresses, and those of the ready ones in list order.

    Not thread-safe: the balancer calls it under its lock. ``freeze()`` shares blocks between
    successive views, as the ready list does, and is aligned with the ready list's ``freeze()``
    because both see the same adds and removes.
    """

    def __init__(self, make: Callable[[Address], Any]) -> None:
        self._make = make
        self._by_address: dict[Address, Any] = {}
        self._ready: ReadyList[Any] = ReadyList()

    def listed(self, address: Address) -> None:
        """``address`` joined the list: give it a fresh state."""
        self._by_address[address] = self._make(address)

    def unlisted(self, address: Address) -> None:
        """``address`` left the list (it is no longer ready): forget its state."""
        self._by_address.pop(address, None)

    def up(self, position: int, address: Address) -> None:
        self._ready.add(position, self._by_address[address])

    def down(self, position: int) -> None:
        self._ready.remove(position)

    def __getitem__(self, address: Address) -> Any:
        return self._by_address[address]

    def freeze(self) -> Sequence[Any]:
        """The states of the ready addresses, in list order."""
        return self._ready.freeze()[0]


class NoStates(Sequence[None]):
    """``PickerState.states`` of a policy without per-address state: ``n`` Nones, no storage."""

    __slots__ = ("_len",)

    def __init__(self, length: int) -> None:
        self._len = length

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> None: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[None, ...]: ...

    def __getitem__(self, index: int | slice) -> tuple[None, ...] | None:
        if isinstance(index, slice):
            return (None,) * len(range(*index.indices(self._len)))
        if not -self._len <= index < self._len:
            raise IndexError("index out of range")
        return None

    def __iter__(self) -> Iterator[None]:
        return itertools.repeat(None, self._len)


class InFlight:
    """How many calls picked for one address have not ended yet: a per-address state for
    load-aware policies (least_request, p2c). Thread-safe, without a lock.

    ``begin()`` counts a call in and returns its put; the count goes down exactly once, when the
    channel calls that put or its ``abandon()``, so it stays exact whatever the channel does.
    """

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        # One item per call in flight: deque appends and pops are atomic, so len() is exact.
        self._calls: deque[None] = deque()

    @property
    def count(self) -> int:
        """The calls in flight now."""
        return len(self._calls)

    def begin(self, put: Put | None = None) -> TrackedPut:
        """Count one call in; the returned put ends it and then calls ``put`` (if any)."""
        self._calls.append(None)
        return TrackedPut(self._calls, put)


class TrackedPut:
    """The put of one call counted by :class:`InFlight` (made by ``InFlight.begin()``).

    Calling it (the call ran) or ``abandon()`` (it never ran on the address) ends the count once;
    any later call of either does nothing. A call ends the wrapped put with the same ``DoneInfo``;
    ``abandon()`` calls the wrapped put's ``abandon`` if it has one, and never the put itself.
    """

    __slots__ = ("_calls", "_ended", "_put")

    def __init__(self, calls: deque[None], put: Put | None = None) -> None:
        self._calls = calls
        self._put = put
        self._ended = itertools.count()  # next() is atomic: the first caller gets 0

    def __call__(self, info: DoneInfo | None = None) -> None:
        if next(self._ended) == 0:
            self._calls.pop()
            if self._put is not None:
                self._put(info)

    def abandon(self) -> None:
        if next(self._ended) == 0:
            self._calls.pop()
            abandon = getattr(self._put, "abandon", None)
            if abandon is not None:
                abandon()
