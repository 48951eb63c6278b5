"""Helpers for testing code that uses grpc-naming, and for testing plugins.

* ``DEFAULT_TIMEOUT`` (for what must happen) and ``SHORT_TIMEOUT`` (to show that something does not).
* :func:`wait_until`: poll a condition with a bounded wait.
* :class:`FakeChannel`: the channel side of a balancer without gRPC. It connects to every address the
  balancer notifies (calls ``up()``), forgets removed ones (calls ``down``), records every list, and
  offers ``wait_for_addresses`` and ``wait_for_round_robin``.
* ``ManualResolver`` (from ``backends.manual``): the resolver whose updates a test pushes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from backends.manual import ManualResolver
from naming.core import Address, BalancerClosedError, DeadlineExceededError

if TYPE_CHECKING:
    from balancers import Balancer, Down, Notifications

__all__ = [
    "DEFAULT_TIMEOUT",
    "SHORT_TIMEOUT",
    "FakeChannel",
    "ManualResolver",
    "wait_until",
]

DEFAULT_TIMEOUT = 10.0
SHORT_TIMEOUT = 0.05


def wait_until(
    condition: Callable[[], bool],
    timeout: float = DEFAULT_TIMEOUT,
    message: str = "condition",
    interval: float = 0.005,
) -> None:
    """Return once ``condition()`` is true; raise DeadlineExceededError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise DeadlineExceededError(f"testing: {message} not met within {timeout}s")
        time.sleep(interval)


class FakeChannel:
    """Drives a started balancer as a channel would, with every connection succeeding at once.

    With ``auto_up=False`` nothing is connected by itself: call :meth:`up` and :meth:`down`.
    ``close()`` closes the balancer (if still open) and stops the reader thread.
    """

    def __init__(self, balancer: Balancer, *, auto_up: bool = True) -> None:
        notifications = balancer.notify()
        if notifications is None:
            raise ValueError("testing: FakeChannel needs a balancer started with a resolver")
        self.balancer = balancer
        self.lists: list[list[Address]] = []
        self._auto_up = auto_up
        self._downs: dict[Address, Down] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._read, args=(notifications,), name="naming-fake-channel", daemon=True
        )
        self._thread.start()

    @property
    def connected(self) -> set[Address]:
        with self._lock:
            return set(self._downs)

    @property
    def latest(self) -> list[Address] | None:
        with self._lock:
            return list(self.lists[-1]) if self.lists else None

    def up(self, address: Address | str) -> None:
        address = Address.of(address)
        down = self.balancer.up(address)
        if down is not None:
            with self._lock:
                self._downs[address] = down

    def down(self, address: Address | str, error: BaseException | None = None) -> None:
        with self._lock:
            down = self._downs.pop(Address.of(address), None)
        if down is not None:
            down(error)

    def wait_for_addresses(
        self, expected: Sequence[Address | str], timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until the newest notified list is ``expected``, in that order."""
        want = [Address.of(a) for a in expected]
        wait_until(lambda: self.latest == want, timeout, f"address list {want}")

    def wait_for_round_robin(
        self, expected: Sequence[Address | str], timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until fail-fast picks cycle over exactly ``expected``, each once per round."""
        want = {Address.of(a) for a in expected}

        def one_clean_round() -> bool:
            picks = [self.balancer.get()[0] for _ in range(len(want))]
            again = [self.balancer.get()[0] for _ in range(len(want))]
            return set(picks) == want and len(set(picks)) == len(want) and picks == again

        wait_until(one_clean_round, timeout, f"round robin over {sorted(a.addr for a in want)}")

    def close(self) -> None:
        with contextlib.suppress(BalancerClosedError):
            self.balancer.close()
        self._thread.join(DEFAULT_TIMEOUT)

    def _read(self, notifications: Notifications) -> None:
        for addresses in notifications:
            with self._lock:
                self.lists.append(list(addresses))
                gone = [a for a in self._downs if a not in addresses]
                downs = [self._downs.pop(a) for a in gone]
            for down in downs:
                down(None)
            if self._auto_up:
                for address in addresses:
                    if address not in self.connected:
                        self.up(address)
