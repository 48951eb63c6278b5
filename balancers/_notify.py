"""Notifications: the legacy ``Notify()`` channel, capacity one, latest list wins.

Besides full lists (``get()``, the legacy interface), a reader may ask for the *changes* since its
last read (``changes()``): a balancer that knows them (``publish_changes()``) then hands a channel
over 10,000 addresses one ADD as one ADD, not as a copy of 10,000.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from naming.core import Address, BalancerClosedError, DeadlineExceededError, as_timeout

__all__ = ["AddressChanges", "Notifications"]

Provider = Callable[[], list[Address]]


@dataclass(frozen=True)
class AddressChanges:
    """What :meth:`Notifications.changes` returns: the difference since the reader's last read.

    ``added`` and ``removed`` hold addresses in the order they changed; each address is in at most
    one of them (its last change wins), and applying them is idempotent: an address ``added`` may
    already be there, one ``removed`` may already be gone. When the publisher gave no changes,
    ``full`` is the whole current list instead (and ``added`` and ``removed`` are empty): the
    reader compares it with what it has.
    """

    added: Sequence[Address] = ()
    removed: Sequence[Address] = ()
    full: list[Address] | None = None


class Notifications:
    """Address lists from a balancer to its channel.

    The balancer calls ``publish()`` (or ``publish_from()``, ``publish_changes()``) after every
    batch of updates; a list not yet read is replaced by the newer one. The channel calls
    ``get()`` or iterates for full lists, or calls ``changes()`` for what changed since its last
    read: one reader per stream, using one of the two. All methods are thread-safe.
    """

    def __init__(self, owner: str = "balancer") -> None:
        self._owner = owner
        self._cond = threading.Condition()
        self._latest: list[Address] | Provider | None = None
        # What changed since the last read, by address (True: added), latest change last; None
        # when a full list was published since: the next changes() gives the full list.
        self._pending: dict[Address, bool] | None = {}
        self._closed = False

    def publish(self, addresses: Iterable[Address]) -> None:
        """Offer a new full list (for balancer implementations). Ignored once closed."""
        latest = list(addresses)
        with self._cond:
            if self._closed:
                return
            self._latest = latest
            self._pending = None
            self._cond.notify_all()

    def publish_from(self, provider: Provider) -> None:
        """Announce a new full list that ``provider()`` returns when the reader asks for it.

        The copy is made by the reader, so a balancer with many addresses pays nothing per change;
        the reader gets the list as it is when it reads, which is the newest (latest wins).
        """
        with self._cond:
            if self._closed:
                return
            self._latest = provider
            self._pending = None
            self._cond.notify_all()

    def publish_changes(
        self, added: Iterable[Address], removed: Iterable[Address], provider: Provider
    ) -> None:
        """Announce what changed (``added``, ``removed``: the list's actual changes, in order)
        and how to get the whole new list (``provider``, as in ``publish_from``).

        Costs O(changes): ``changes()`` hands them to the reader as they are, ``get()`` still
        gives the full list. Ignored once closed.
        """
        with self._cond:
            if self._closed:
                return
            pending = self._pending
            if pending is not None:
                for address in removed:
                    pending.pop(address, None)  # the last change goes last
                    pending[address] = False
                for address in added:
                    pending.pop(address, None)
                    pending[address] = True
            self._latest = provider
            self._cond.notify_all()

    def close(self) -> None:
        """End the stream (for balancer implementations): readers get BalancerClosedError."""
        with self._cond:
            self._closed = True
            self._latest = None
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> list[Address]:
        """The newest full list not yet read; blocks until there is one.

        Raises DeadlineExceededError when ``timeout`` passes, BalancerClosedError once closed.
        """
        with self._cond:
            latest = self._take(timeout)
            self._pending = {}  # the reader now has the whole list
        return latest() if callable(latest) else latest

    def changes(self, timeout: float | None = None) -> AddressChanges:
        """What changed since the last read (the first read: since the start); blocks until
        something did. Several publications not yet read come as one.

        Raises DeadlineExceededError when ``timeout`` passes, BalancerClosedError once closed.
        """
        with self._cond:
            latest = self._take(timeout)
            pending, self._pending = self._pending, {}
        if pending is None:
            return AddressChanges(full=latest() if callable(latest) else latest)
        added = [address for address, present in pending.items() if present]
        removed = [address for address, present in pending.items() if not present]
        return AddressChanges(added, removed)

    def _take(self, timeout: float | None) -> list[Address] | Provider:
        """Under the lock: wait for news and take it."""
        if not self._cond.wait_for(self._news_or_closed, as_timeout(timeout, self._owner)):
            raise DeadlineExceededError(f"{self._owner}: no new address list within {timeout:.3g}s")
        if self._closed:
            raise BalancerClosedError(f"{self._owner}: balancer is closed")
        latest, self._latest = self._latest, None
        assert latest is not None
        return latest

    def _news_or_closed(self) -> bool:
        return self._closed or self._latest is not None

    def __iter__(self) -> Iterator[list[Address]]:
        while True:
            try:
                yield self.get()
            except BalancerClosedError:
                return
