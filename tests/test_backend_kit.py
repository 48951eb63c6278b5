"""The backend kit's outage loop (naming.core.RegistryWatcher), against a registry made here.

The registry is a revisioned set in memory with an event log, outages, refusals, lost sessions and
compaction; FakeWatcher reads it the way etcd's watcher reads etcd. The kit's option parser and
record codec are tested in test_backend_kit_codec.py.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import pytest

from naming.core import (
    Address,
    BackendUnavailableError,
    Backoff,
    NamingError,
    Operation,
    RegistryWatcher,
    Update,
)
from naming.testing import wait_until
from tests.conftest import DEFAULT_TIMEOUT, SHORT_TIMEOUT

A, B, C, D = (Address(f"10.0.0.{i}:80") for i in range(1, 5))
LOOP_LOGGER = "naming.watch"

# -- a registry and its watcher --------------------------------------------------------------------

Event = tuple[int, Operation, Address]


class FakeRegistry:
    """A registry in memory: a set at a revision, the log of changes, outages and compaction."""

    def __init__(self, *addresses: Address) -> None:
        self._cond = threading.Condition()
        self._set = dict.fromkeys(addresses)
        self._log: list[Event] = []
        self._compacted = 0  # the log holds no event at or below this revision
        self.revision = 0
        self.error: Exception | None = None  # raised by every call while set
        self.snapshots = 0
        self.watches = 0

    def put(self, address: Address) -> None:
        self._change(Operation.ADD, address)

    def delete(self, address: Address) -> None:
        self._change(Operation.DELETE, address)

    def _change(self, op: Operation, address: Address) -> None:
        with self._cond:
            self.revision += 1
            if op is Operation.ADD:
                self._set[address] = None
            else:
                self._set.pop(address, None)
            self._log.append((self.revision, op, address))
            self._cond.notify_all()

    def compact(self) -> None:
        with self._cond:
            self._compacted = self.revision
            self._log.clear()

    def fail_with(self, error: Exception | None) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def get(self) -> tuple[list[Address], int]:
        with self._cond:
            self._check()
            self.snapshots += 1
            return list(self._set), self.revision

    def open_watch(self, after: int) -> bool:
        """False when the events after ``after`` were compacted away."""
        with self._cond:
            self._check()
            self.watches += 1
            return after >= self._compacted

    def events(self, after: int, stopping: Callable[[], bool]) -> list[Event] | None:
        """The events after ``after`` (waits for one); None when they were compacted away."""
        with self._cond:
            for _ in range(int(DEFAULT_TIMEOUT / 0.05)):
                self._check()
                if after < self._compacted:
                    return None
                found = [event for event in self._log if event[0] > after]
                if found or stopping():
                    return found
                self._cond.wait(0.05)
            return []


class SessionLost(BackendUnavailableError):
    """The registry is away and has forgotten the watcher's position when it comes back."""


class FakeWatcher(RegistryWatcher):
    """What a backend writes on the kit: a snapshot, a watch from its position, an interrupt."""

    def __init__(self, registry: FakeRegistry, backoff: Backoff) -> None:
        super().__init__("fake", "svc", backoff=backoff, join_timeout=DEFAULT_TIMEOUT)
        self.registry = registry
        self.position = 0
        self.released = 0
        self.start()

    def snapshot(self) -> None:
        addresses, self.position = self.registry.get()
        self.publish(addresses)

    def watch(self) -> None:
        if not self.registry.open_watch(self.position):
            return
        self.resumed()
        while not self.stopping:
            try:
                events = self.registry.events(self.position, lambda: self.stopping)
            except SessionLost:
                self.resync()
                raise
            if events is None:
                return
            for revision, op, address in events:
                if op is Operation.ADD:
                    self.add(address)
                else:
                    self.discard(address)
                self.position = revision

    def interrupt(self) -> None:
        self.registry.wake()

    def release(self) -> None:
        self.released += 1


class RecordingBackoff(Backoff):
    """A Backoff that records every delay it hands out and every reset."""

    def __init__(self, initial: float = 0.001, maximum: float = 0.004) -> None:
        super().__init__(initial, maximum, rng=random.Random(3))
        self._cond = threading.Condition()
        self.delays: list[float] = []
        self.resets = 0

    def next(self) -> float:
        delay = super().next()
        with self._cond:
            self.delays.append(delay)
            self._cond.notify_all()
        return delay

    def reset(self) -> None:
        super().reset()
        with self._cond:
            self.resets += 1

    def wait_for_delays(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.delays) >= count, DEFAULT_TIMEOUT)


DOWN = BackendUnavailableError("fake: the registry is down")


def _loop_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOOP_LOGGER and r.levelno == level]


def _watch_thread() -> threading.Thread | None:
    found = [t for t in threading.enumerate() if t.name == "naming-fake-watch-svc"]
    return found[0] if found else None


# -- the loop --------------------------------------------------------------------------------------


def test_an_outage_keeps_the_last_set_and_logs_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with caplog.at_level(logging.DEBUG, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(4)
        assert w.next(SHORT_TIMEOUT) == []
        assert w.addresses == [A, B]
    assert _loop_records(caplog, logging.WARNING) == [
        "fake: the registry is down; keeping the last 2 addresses"
    ]
    assert len(_loop_records(caplog, logging.DEBUG)) >= 3
    assert w.released == 1


def test_after_an_outage_the_watch_resumes_and_delivers_what_changed_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with caplog.at_level(logging.INFO, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(2)
        registry.put(C)
        registry.delete(A)
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.delete(A), Update.add(C)]
        assert registry.snapshots == 1  # resumed from its position, no new snapshot
        assert registry.watches >= 2
    assert _loop_records(caplog, logging.INFO) == ["fake: watching svc again"]


def test_a_lost_position_takes_a_new_snapshot_and_delivers_only_the_difference() -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(2)
        registry.put(D)
        registry.put(C)
        registry.delete(D)
        registry.delete(A)
        registry.compact()  # the changes made while cut off are gone from the log
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.delete(A), Update.add(C)]
        assert registry.snapshots == 2
        assert w.next(SHORT_TIMEOUT) == []
        registry.put(D)  # and the watch goes on from the new snapshot's position
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(D)]


def test_a_registry_that_is_down_from_the_start_delivers_its_set_once_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    registry.fail_with(DOWN)
    with caplog.at_level(logging.WARNING, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        backoff.wait_for_delays(3)
        assert w.next(SHORT_TIMEOUT) == []
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
    assert _loop_records(caplog, logging.WARNING) == [
        "fake: the registry is down; keeping the last 0 addresses"
    ]


def test_a_non_retryable_error_fails_the_watcher_and_next_raises_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    refused = NamingError("fake: permission denied")
    with caplog.at_level(logging.ERROR, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
        registry.fail_with(refused)
        with pytest.raises(NamingError) as raised:
            w.next(DEFAULT_TIMEOUT)
        assert raised.value is refused
        thread = _watch_thread()
        if thread is not None:  # the loop has failed the watcher and is returning
            thread.join(DEFAULT_TIMEOUT)
        assert _watch_thread() is None
        assert backoff.delays == []
    assert _loop_records(caplog, logging.ERROR) == ["fake: permission denied; the watcher gives up"]


def test_an_error_that_is_not_a_naming_error_fails_the_watcher_with_one() -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    registry.fail_with(KeyError("oops"))
    with FakeWatcher(registry, backoff) as w, pytest.raises(NamingError) as raised:
        w.next(DEFAULT_TIMEOUT)
    assert type(raised.value) is NamingError
    assert str(raised.value) == "fake: the watcher failed: KeyError('oops')"


def test_close_during_a_long_backoff_ends_the_loop_promptly() -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff(initial=600.0, maximum=600.0)
    registry.fail_with(DOWN)
    w = FakeWatcher(registry, backoff)
    backoff.wait_for_delays(1)
    thread = _watch_thread()
    assert thread is not None and thread.is_alive()
    w.close()  # joins for up to DEFAULT_TIMEOUT: a wait that close() cannot cut leaves it alive
    assert not thread.is_alive()
    assert backoff.delays[0] >= 480.0 and len(backoff.delays) == 1
    assert w.released == 1


def test_close_while_watching_ends_the_loop() -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    w = FakeWatcher(registry, backoff)
    assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
    wait_until(lambda: registry.watches == 1, message="the watch opened")
    thread = _watch_thread()
    assert thread is not None
    w.close()
    assert not thread.is_alive()
    assert backoff.delays == []


def test_the_backoff_resets_after_a_success_and_a_new_outage_warns_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff(initial=0.001, maximum=0.016)
    with caplog.at_level(logging.WARNING, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
        resets_before = backoff.resets
        registry.fail_with(DOWN)
        backoff.wait_for_delays(4)
        registry.fail_with(None)
        wait_until(lambda: backoff.resets > resets_before, message="the backoff reset")
        first_outage = len(backoff.delays)
        registry.put(B)
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(first_outage + 1)
        registry.fail_with(None)
    # doubling in the first outage (jitter 0.8-1.2), from the start again in the second
    assert backoff.delays[3] > backoff.delays[0] * 4
    assert backoff.delays[first_outage] <= 0.001 * 1.2
    assert _loop_records(caplog, logging.WARNING) == [
        "fake: the registry is down; keeping the last 1 addresses",
        "fake: the registry is down; keeping the last 2 addresses",
    ]


def test_resync_before_an_outage_makes_the_loop_take_a_new_snapshot_after_it() -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        wait_until(lambda: registry.watches == 1, message="the watch opened")
        registry.fail_with(SessionLost("fake: the session expired"))
        backoff.wait_for_delays(1)
        registry.delete(B)
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.delete(B)]
        assert registry.snapshots == 2
