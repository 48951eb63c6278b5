"""Follower: reads a watcher for a conformance check and holds every batch to the Watcher contract.

It keeps the set the updates build. An ADD of an address already in the set, a DELETE of one that
is not, a first batch with a DELETE, or an empty batch returned before its timeout fails the check
at once, with the history of batches in the message.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from naming.core import Address, Operation, Update, Watcher

from ._wait import DEFAULT_TIMEOUT, SHORT_TIMEOUT

__all__ = ["Follower", "addresses"]

_STEP = 0.5  # the longest single next() while waiting for something


def addresses(items: Iterable[Address | str]) -> set[Address]:
    return {Address.of(item) for item in items}


def _show(updates: Iterable[Update]) -> str:
    return "[" + ", ".join(f"{u.op.name} {u.addr}{_meta(u)}" for u in updates) + "]"


def _meta(update: Update) -> str:
    return "" if update.metadata is None else f" {dict(update.metadata.thaw())}"


class Follower:
    """Applies a watcher's batches to ``self.addresses``; see the module docstring."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.addresses: set[Address] = set()
        self.history: list[list[Update]] = []

    def fail(self, problem: str) -> AssertionError:
        batches = ", ".join(_show(batch) for batch in self.history[-8:]) or "none"
        return AssertionError(f"conformance: {problem}; the last batches: {batches}")

    def first(self, timeout: float = DEFAULT_TIMEOUT) -> list[Update]:
        """The first ``next()``: every update must be an ADD (the whole current set)."""
        if self.history:
            raise self.fail("first() called after the first batch")
        batch = self.watcher.next(timeout=timeout)
        if any(update.op is not Operation.ADD for update in batch):
            raise self.fail(f"the first batch {_show(batch)} holds a DELETE")
        self._apply(batch, allow_empty=True)
        return batch

    def next(self, timeout: float) -> list[Update]:
        """One ``next(timeout)``; an empty batch must mean that ``timeout`` passed."""
        begun = time.monotonic()
        batch = self.watcher.next(timeout=timeout)
        early = not batch and time.monotonic() - begun < timeout * 0.9
        if early:
            raise self.fail(f"next(timeout={timeout}) returned an empty batch before its timeout")
        self._apply(batch)
        return batch

    def same(self, batch: list[Update], *expected: Update) -> None:
        """``batch`` holds exactly ``expected``, in any order, each once."""
        if Counter(batch) != Counter(expected):
            raise self.fail(f"got {_show(batch)}, expected {_show(expected)}")

    def expect(self, *updates: Update, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Exactly ``updates`` arrive next (in one batch or several, in any order), nothing else."""
        missing = Counter(updates)
        deadline = time.monotonic() + timeout
        while +missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.fail(f"still waiting for {_show(missing.elements())}")
            for update in self.next(min(remaining, _STEP)):
                if missing[update] <= 0:
                    raise self.fail(f"{_show([update])} arrived, expected {_show(updates)}")
                missing[update] -= 1

    def wait_for(self, expected: Iterable[Address | str], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Read batches until the set is exactly ``expected``."""
        want = addresses(expected)
        deadline = time.monotonic() + timeout
        while self.addresses != want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                have = sorted(a.addr for a in self.addresses)
                raise self.fail(f"the set is {have}, expected {sorted(a.addr for a in want)}")
            self.next(min(remaining, _STEP))

    def quiet(self, seconds: float = 4 * SHORT_TIMEOUT) -> None:
        """Nothing at all arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            batch = self.next(remaining)
            if batch:
                raise self.fail(f"{_show(batch)} arrived although nothing changed")

    def _apply(self, batch: list[Update], *, allow_empty: bool = False) -> None:
        if not batch and not allow_empty:
            return
        self.history.append(batch)
        for update in batch:
            address = update.address
            if update.op is Operation.ADD:
                if address in self.addresses:
                    raise self.fail(f"ADD of {update.addr}, which is already in the set")
                self.addresses.add(address)
            else:
                if address not in self.addresses:
                    raise self.fail(f"DELETE of {update.addr}, which is not in the set")
                self.addresses.remove(address)
