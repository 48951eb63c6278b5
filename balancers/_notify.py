"""Notifications: the legacy ``Notify()`` channel, capacity one, latest list wins."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from naming.core import Address, BalancerClosedError, DeadlineExceededError, as_timeout

__all__ = ["Notifications"]


class Notifications:
    """Full address lists from a balancer to its channel.

    The balancer calls ``publish()`` after every batch of updates; a list not yet read is replaced
    by the newer one. The channel calls ``get()`` or iterates. All methods are thread-safe.
    """

    def __init__(self, owner: str = "balancer") -> None:
        self._owner = owner
        self._cond = threading.Condition()
        self._latest: list[Address] | Callable[[], list[Address]] | None = None
        self._closed = False

    def publish(self, addresses: Iterable[Address]) -> None:
        """Offer a new full list (for balancer implementations). Ignored once closed."""
        latest = list(addresses)
        with self._cond:
            if self._closed:
                return
            self._latest = latest
            self._cond.notify_all()

    def publish_from(self, provider: Callable[[], list[Address]]) -> None:
        """Announce a new full list that ``provider()`` returns when the reader asks for it.

        The copy is made by the reader, so a balancer with many addresses pays nothing per change;
        the reader gets the list as it is when it reads, which is the newest (latest wins).
        """
        with self._cond:
            if self._closed:
                return
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
            if not self._cond.wait_for(self._news_or_closed, as_timeout(timeout, self._owner)):
                raise DeadlineExceededError(
                    f"{self._owner}: no new address list within {timeout:.3g}s"
                )
            if self._closed:
                raise BalancerClosedError(f"{self._owner}: balancer is closed")
            latest, self._latest = self._latest, None
        assert latest is not None
        return latest() if callable(latest) else latest

    def _news_or_closed(self) -> bool:
        return self._closed or self._latest is not None

    def __iter__(self) -> Iterator[list[Address]]:
        while True:
            try:
                yield self.get()
            except BalancerClosedError:
                return
