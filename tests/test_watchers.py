from __future__ import annotations

import threading

import pytest

from naming import (
    Address,
    NamingError,
    QueueWatcher,
    SnapshotWatcher,
    Update,
    WatcherClosedError,
)
from tests.conftest import DEFAULT_TIMEOUT, SHORT_TIMEOUT


def test_queue_watcher_returns_each_batch_unchanged_in_order() -> None:
    watcher = QueueWatcher([Update.add("a:1")])
    watcher.push([Update.add("b:1"), Update.add("b:1")])
    watcher.push([Update.delete("zz:1")])
    assert watcher.next() == [Update.add("a:1")]
    assert watcher.next() == [Update.add("b:1"), Update.add("b:1")]
    assert watcher.next() == [Update.delete("zz:1")]
    assert watcher.next(timeout=SHORT_TIMEOUT) == []
    watcher.close()


def test_next_times_out_with_an_empty_list() -> None:
    watcher = SnapshotWatcher([Address("a:1")])
    assert watcher.next() == [Update.add("a:1")]
    assert watcher.next(timeout=SHORT_TIMEOUT) == []
    assert watcher.next(timeout=0) == []
    watcher.close()


def test_close_wakes_a_blocked_next_which_raises() -> None:
    watcher = QueueWatcher()
    assert watcher.next() == []
    raised: list[BaseException] = []

    def consume() -> None:
        try:
            watcher.next()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=consume, name="naming-test-consumer")
    thread.start()
    assert not thread.join(SHORT_TIMEOUT)
    assert thread.is_alive()
    watcher.close()
    thread.join(DEFAULT_TIMEOUT)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], WatcherClosedError)


def test_close_is_idempotent_and_runs_on_close_once() -> None:
    calls: list[int] = []
    watcher = QueueWatcher(on_close=lambda: calls.append(1))
    watcher.close()
    watcher.close()
    assert calls == [1]
    assert watcher.closed
    with pytest.raises(WatcherClosedError):
        watcher.next(timeout=0)
    watcher.push([Update.add("a:1")])  # ignored after close, no error


def test_iterating_a_watcher_ends_when_it_is_closed() -> None:
    watcher = QueueWatcher([Update.add("a:1")])
    watcher.push([Update.add("b:1")])
    seen = []
    for batch in watcher:
        seen.append(batch)
        if len(seen) == 2:
            watcher.close()
    assert seen == [[Update.add("a:1")], [Update.add("b:1")]]


def test_fail_is_raised_after_pending_batches() -> None:
    watcher = QueueWatcher([Update.add("a:1")])
    watcher.fail(NamingError("backend: gave up"))
    assert watcher.next() == [Update.add("a:1")]
    with pytest.raises(NamingError, match="gave up"):
        watcher.next()
    watcher.close()


def test_snapshot_watcher_blocks_until_the_first_publish() -> None:
    watcher = SnapshotWatcher()
    assert watcher.next(timeout=SHORT_TIMEOUT) == []
    watcher.publish([])
    assert watcher.next(timeout=SHORT_TIMEOUT) == []  # the first result: the empty set
    watcher.publish([Address("a:1"), Address("b:1")])
    assert watcher.next() == [Update.add("a:1"), Update.add("b:1")]
    watcher.close()


def test_snapshot_watcher_returns_only_differences_and_swallows_cancelled_changes() -> None:
    watcher = SnapshotWatcher([Address("a:1"), Address("b:1")])
    assert watcher.next() == [Update.add("a:1"), Update.add("b:1")]
    watcher.publish([Address("a:1"), Address("c:1")])
    watcher.publish([Address("a:1"), Address("c:1"), Address("c:1")])
    assert watcher.next() == [Update.delete("b:1"), Update.add("c:1")]
    watcher.publish([Address("a:1")])
    watcher.publish([Address("a:1"), Address("c:1")])  # back to what was delivered
    assert watcher.next(timeout=SHORT_TIMEOUT) == []
    assert watcher.addresses == [Address("a:1"), Address("c:1")]
    watcher.close()


def test_snapshot_watcher_add_and_discard_change_one_address() -> None:
    watcher = SnapshotWatcher([Address("a:1")])
    assert watcher.next() == [Update.add("a:1")]
    watcher.add(Address("b:1"))
    watcher.add(Address("b:1"))
    watcher.discard(Address("a:1"))
    watcher.discard(Address("zz:1"))
    assert watcher.next() == [Update.delete("a:1"), Update.add("b:1")]
    watcher.add(Address("c:1"))
    watcher.discard(Address("c:1"))  # cancels out
    watcher.discard(Address("b:1"))
    watcher.add(Address("b:1"))  # cancels out too
    assert watcher.next(timeout=SHORT_TIMEOUT) == []
    assert watcher.addresses == [Address("b:1")]
    watcher.close()


def test_snapshot_watcher_changes_before_the_first_read_fold_into_the_first_set() -> None:
    watcher = SnapshotWatcher()
    watcher.add(Address("early:1"))
    assert watcher.next(timeout=SHORT_TIMEOUT) == []  # not published yet
    watcher.publish([Address("a:1"), Address("b:1")])
    watcher.discard(Address("a:1"))
    watcher.add(Address("c:1"))
    assert watcher.next() == [Update.add("b:1"), Update.add("c:1")]
    watcher.close()
