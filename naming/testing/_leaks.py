"""LeakCheck: what a test started and left running (grpc-go's ``grpctest`` leak check, in Python).

It covers threads (by default ours: those named ``naming-*``), the subchannels of the channels
handed to :meth:`LeakCheck.track`, and the child processes of real servers
(``naming.testing.process.live_processes()``: every ManagedProcess, etcd's included). Whatever was
already running when the check was made is not a leak.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from .process import ManagedProcess, live_processes

__all__ = ["LEAK_GRACE", "LeakCheck", "naming_thread"]

LEAK_GRACE = 5.0
"""How long a check waits for what is still running to end before it calls it a leak."""

_POLL = 0.01


class _HasSubchannels(Protocol):
    def subchannels(self) -> Mapping[Any, Any]: ...


_Channel = TypeVar("_Channel", bound=_HasSubchannels)


def naming_thread(thread: threading.Thread) -> bool:
    """True for the threads grpc-naming starts: their names begin with ``naming-``."""
    return thread.name.startswith("naming-")


class LeakCheck:
    """A snapshot of what runs now; :meth:`leaks` lists what was started since and still runs.

    ``threads`` picks the threads that count (``naming_thread`` by default; ``lambda t: True`` for
    every thread, grpc's and servers' included). :meth:`check` waits up to ``grace`` seconds for
    them to end, then raises AssertionError naming each leak. Not thread-safe: one test, one check.
    """

    def __init__(
        self,
        *,
        threads: Callable[[threading.Thread], bool] = naming_thread,
        grace: float = LEAK_GRACE,
    ) -> None:
        self.grace = grace
        self._counts = threads
        self._threads_before = set(threading.enumerate())
        self._processes_before: weakref.WeakSet[ManagedProcess] = weakref.WeakSet(live_processes())
        self._channels: list[_HasSubchannels] = []

    def track(self, channel: _Channel) -> _Channel:
        """Also report ``channel`` (anything with ``subchannels()``) if it keeps a subchannel."""
        self._channels.append(channel)
        return channel

    def leaks(self) -> list[str]:
        """What is running now that was not before, one line each; empty when nothing leaked."""
        found = [
            f"thread {thread.name} still running"
            for thread in threading.enumerate()
            if thread not in self._threads_before and thread.is_alive() and self._counts(thread)
        ]
        for channel in self._channels:
            kept = channel.subchannels()
            if kept:
                found.append(f"{channel!r} kept {len(kept)} subchannels: {sorted(map(str, kept))}")
        found += [
            f"process {process!r} still running"
            for process in live_processes()
            if process not in self._processes_before
        ]
        return sorted(found)

    def wait(self) -> list[str]:
        """Wait up to ``grace`` seconds for the leaks to end; return those that did not."""
        deadline = time.monotonic() + self.grace
        found = self.leaks()
        while found and time.monotonic() < deadline:
            time.sleep(_POLL)
            found = self.leaks()
        return found

    def check(self) -> None:
        """:meth:`wait`, then raise AssertionError naming every leak, if any is left."""
        found = self.wait()
        if found:
            raise AssertionError(self.describe(found))

    @staticmethod
    def describe(leaks: list[str]) -> str:
        return "testing: still running after the test: " + "; ".join(leaks)
