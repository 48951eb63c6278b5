"""Every blocking call reads ``timeout=`` the same way: None and infinity wait for ever, NaN and
non-numbers are refused naming the component, zero or less does not wait."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import balancers
from backends.manual import ManualResolver
from naming import Address, DeadlineExceededError, SnapshotWatcher, Update
from naming.core import as_timeout
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT


def test_as_timeout_reads_every_form() -> None:
    assert as_timeout(None, "x") is None
    assert as_timeout(float("inf"), "x") is None
    assert as_timeout(float("-inf"), "x") == 0.0
    assert as_timeout(2, "x") == 2
    assert as_timeout(-1.5, "x") == -1.5
    with pytest.raises(
        ValueError, match=r"^x: timeout must be a number of seconds or None, got nan"
    ):
        as_timeout(float("nan"), "x")
    for bad in (True, "1", object()):
        with pytest.raises(TypeError, match=r"^x: timeout must be a number"):
            as_timeout(bad, "x")  # type: ignore[arg-type]


def _wakes_on_inf(block: Callable[[], object], wake: Callable[[], None]) -> object:
    """Run ``block()`` (a call with timeout=inf) in a thread, then ``wake()``; its result."""
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(block()), name="test-inf")
    thread.start()
    thread.join(SHORT_TIMEOUT)
    assert thread.is_alive(), "an infinite timeout returned before anything happened"
    wake()
    thread.join(DEFAULT_TIMEOUT)
    assert not thread.is_alive()
    return got[0]


def test_watcher_next_waits_for_ever_on_inf_and_refuses_nan() -> None:
    watcher = SnapshotWatcher(name="w")
    result = _wakes_on_inf(
        lambda: watcher.next(timeout=float("inf")), lambda: watcher.publish([Address("a:1")])
    )
    assert result == [Update.add("a:1")]
    with pytest.raises(ValueError, match=r"^w: timeout must be"):
        watcher.next(timeout=float("nan"))
    watcher.close()


def test_notifications_and_blocking_get_wait_for_ever_on_inf() -> None:
    resolver = ManualResolver()
    rr = balancers.create("round_robin", resolver=resolver)
    rr.start("manual:///x")
    notifications = rr.notify()
    assert notifications is not None
    assert notifications.get(timeout=DEFAULT_TIMEOUT) == []  # the first, empty, list
    with pytest.raises(ValueError, match=r"^round_robin: timeout must be"):
        rr.get(blocking_wait=True, timeout=float("nan"))  # read when the call has to wait
    listed = _wakes_on_inf(
        lambda: notifications.get(timeout=float("inf")),
        lambda: resolver.set_addresses(["a:1"]),
    )
    assert listed == [Address("a:1")]
    picked = _wakes_on_inf(
        lambda: rr.get(blocking_wait=True, timeout=float("inf"))[0],
        lambda: rr.up(Address("a:1")),
    )
    assert picked == Address("a:1")
    with pytest.raises(ValueError, match=r"^round_robin: timeout must be"):
        notifications.get(timeout=float("nan"))
    rr.close()
    resolver.close()


def test_deadline_messages_round_their_numbers() -> None:
    rr = balancers.create("round_robin", resolver=ManualResolver())
    rr.start("manual:///x")
    with pytest.raises(DeadlineExceededError, match=r"within 0\.0123s$"):
        rr.get(blocking_wait=True, timeout=0.0123456789)
    rr.close()
