"""The ready addresses of a balancer: a sorted list, kept in blocks, that freezes cheaply.

A snapshot's view of the list is made of the blocks' tuples, shared between successive snapshots:
a change copies its block and the list of blocks, about 2 * sqrt(n) references at 10,000 addresses
instead of n. A list of one block freezes to a plain tuple. The list holds any items (addresses,
or the per-address states kept alongside them): two lists given the same adds and removes have the
same blocks, so their frozen views stay aligned.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar, overload

__all__ = ["Joined", "ReadyList"]

_BLOCK = 256  # a block holds _BLOCK // 2 to 2 * _BLOCK ready addresses, unless it is the only one

T = TypeVar("T")


class ReadyList(Generic[T]):
    """Items (the ready addresses), sorted by position, in blocks: a sorted list that freezes cheaply.

    ``add()`` and ``remove()`` cost O(log n + block). ``freeze()`` returns immutable sequences of
    the items and of their positions that reuse the tuple of every block unchanged since the
    previous call: it copies O(n / block + block) references, not n.
    """

    def __init__(self, block: int = _BLOCK) -> None:
        self._block = block
        self._positions: list[list[int]] = []  # per block, sorted
        self._addresses: list[list[T]] = []  # per block, in the same order
        self._firsts: list[int] = []  # each block's first position, to find a block by bisection
        self._frozen_positions: list[tuple[int, ...]] = []  # the blocks as last frozen
        self._frozen_addresses: list[tuple[T, ...]] = []
        self._stale: set[int] = set()  # blocks changed since
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, position: int, address: T) -> None:
        self._len += 1
        if not self._firsts:
            self._insert_block(0, [position], [address])
            return
        block = max(bisect.bisect_right(self._firsts, position) - 1, 0)
        positions = self._positions[block]
        index = bisect.bisect_left(positions, position)
        positions.insert(index, position)
        self._addresses[block].insert(index, address)
        self._settle(block)

    def remove(self, position: int) -> None:
        """Remove ``position``, which must be there."""
        self._len -= 1
        block = bisect.bisect_right(self._firsts, position) - 1
        positions = self._positions[block]
        index = bisect.bisect_left(positions, position)
        del positions[index], self._addresses[block][index]
        if not positions:
            self._delete_block(block)
        elif len(positions) < self._block // 2 and len(self._firsts) > 1:  # join a neighbour
            left = block if block + 1 < len(self._firsts) else block - 1
            self._positions[left] += self._positions[left + 1]
            self._addresses[left] += self._addresses[left + 1]
            self._delete_block(left + 1)
            self._settle(left)
        else:
            self._settle(block)

    def _settle(self, block: int) -> None:
        """``block`` changed: note it, and split it in two if it grew too long."""
        positions, addresses = self._positions[block], self._addresses[block]
        self._firsts[block] = positions[0]
        self._stale.add(block)
        if len(positions) > 2 * self._block:
            half = len(positions) // 2
            self._insert_block(block + 1, positions[half:], addresses[half:])
            del positions[half:], addresses[half:]

    def freeze(self) -> tuple[Sequence[T], Sequence[int]]:
        """Immutable views of the items and of their positions, in order."""
        for block in self._stale:
            self._frozen_positions[block] = tuple(self._positions[block])
            self._frozen_addresses[block] = tuple(self._addresses[block])
        self._stale.clear()
        if len(self._firsts) <= 1:
            if not self._firsts:
                return (), ()
            return self._frozen_addresses[0], self._frozen_positions[0]
        starts = tuple(itertools.accumulate(map(len, self._frozen_positions), initial=0))
        return (
            Joined(tuple(self._frozen_addresses), starts),
            Joined(tuple(self._frozen_positions), starts),
        )

    def _insert_block(self, block: int, positions: list[int], addresses: list[T]) -> None:
        self._positions.insert(block, positions)
        self._addresses.insert(block, addresses)
        self._firsts.insert(block, positions[0])
        self._frozen_positions.insert(block, ())
        self._frozen_addresses.insert(block, ())
        self._stale = {b + 1 if b >= block else b for b in self._stale}
        self._stale.add(block)

    def _delete_block(self, block: int) -> None:
        del self._positions[block], self._addresses[block], self._firsts[block]
        del self._frozen_positions[block], self._frozen_addresses[block]
        self._stale = {b - 1 if b > block else b for b in self._stale if b != block}


class Joined(Sequence[T]):
    """An immutable sequence made of tuples (the blocks), which successive snapshots share.

    ``starts`` holds the index of each block's first item, and the length last.
    """

    __slots__ = ("_blocks", "_len", "_starts")

    def __init__(self, blocks: tuple[tuple[T, ...], ...], starts: tuple[int, ...]) -> None:
        self._blocks = blocks
        self._starts = starts
        self._len = starts[-1]

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("index out of range")
        block = bisect.bisect_right(self._starts, index) - 1
        return self._blocks[block][index - self._starts[block]]

    def __iter__(self) -> Iterator[T]:
        return itertools.chain.from_iterable(self._blocks)

    def bisect_right(self: Joined[int], value: int) -> int:
        """``bisect.bisect_right(self, value)`` for sorted items, without a call per step."""
        block = bisect.bisect_right(self._blocks, value, key=_first) - 1
        if block < 0:
            return 0
        return self._starts[block] + bisect.bisect_right(self._blocks[block], value)

    def __repr__(self) -> str:
        return f"({', '.join(map(repr, self))})"


_first = operator.itemgetter(0)
