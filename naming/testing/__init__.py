"""Helpers for testing code that uses grpc-naming, and for testing plugins (docs/testing.md).

* ``DEFAULT_TIMEOUT`` (~10 s, for what must happen) and ``SHORT_TIMEOUT`` (~50 ms, to show that
  something does not), and :func:`wait_until`, the one bounded wait.
* :class:`LeakCheck`: the threads, subchannels and child processes a test left running; the pytest
  fixture ``naming_leak_check`` (plugin ``naming.testing.leaks``) runs it after a test.
* :class:`FakeChannel`: the channel side of a balancer without gRPC. It connects to every address the
  balancer notifies (calls ``up()``), forgets removed ones (calls ``down``), records every list, and
  offers ``wait_for_addresses`` and ``wait_for_round_robin``.
* :func:`is_round_robin`: do picks rotate over the wanted addresses (weights by repetition)?
* ``ManualResolver`` (from ``backends.manual``): the resolver whose updates a test pushes.

Modules: :mod:`naming.testing.servers` (real gRPC servers on loopback, imports grpc),
:mod:`naming.testing.process` (a real server's child process), :mod:`naming.testing.etcd` (real
etcd servers), :mod:`naming.testing.dns` (a real dnsmasq), :mod:`naming.testing.proxy` (a TCP
proxy to cut: partitions), and two pytest plugins: :mod:`naming.testing.leaks` (the leak check
fixture) and :mod:`naming.testing.conformance` (the conformance suite of a backend).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from backends.manual import ManualResolver
from naming.core import Address, BalancerClosedError

from ._leaks import LEAK_GRACE, LeakCheck, naming_thread
from ._roundrobin import is_round_robin, round_robin_mismatch
from ._wait import DEFAULT_TIMEOUT, SHORT_TIMEOUT, wait_until

if TYPE_CHECKING:
    from balancers import Balancer, Down, Notifications

__all__ = [
    "DEFAULT_TIMEOUT",
    "LEAK_GRACE",
    "SHORT_TIMEOUT",
    "FakeChannel",
    "LeakCheck",
    "ManualResolver",
    "is_round_robin",
    "naming_thread",
    "round_robin_mismatch",
    "wait_until",
]


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
        """Wait until two rounds of fail-fast picks rotate over ``expected`` (:func:`is_round_robin`).

        An address listed twice in ``expected`` must be picked twice per round.
        """
        want = [Address.of(a) for a in expected]

        def two_clean_rounds() -> bool:
            picks = [self.balancer.get()[0] for _ in range(2 * len(want))]
            return is_round_robin(want, picks)

        wait_until(two_clean_rounds, timeout, f"round robin over {[a.addr for a in want]}")

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
