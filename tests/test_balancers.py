"""round_robin and pick_first against the legacy grpc-go v1 Balancer rules, driven by ManualResolver."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

import balancers
from backends.manual import ManualResolver
from balancers import Balancer, Picker, PickerState, PickFirst, RoundRobin
from naming import (
    Address,
    BackendUnavailableError,
    BalancerClosedError,
    DeadlineExceededError,
    NamingError,
    NoAddressAvailableError,
    QueueWatcher,
    Resolver,
    Target,
    UnknownBalancerError,
    Update,
    WatcherClosedError,
)
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT, FakeChannel, wait_until

A, B, C = Address("a:1"), Address("b:1"), Address("c:1")


@pytest.fixture
def resolver() -> Iterator[ManualResolver]:
    with ManualResolver() as manual:
        yield manual


def started(cls: type[Balancer], resolver: ManualResolver) -> Balancer:
    balancer = cls(resolver=resolver)
    balancer.start("manual:///test")
    notifications = balancer.notify()
    assert notifications is not None
    assert notifications.get(timeout=DEFAULT_TIMEOUT) == resolver.addresses
    return balancer


def push(balancer: Balancer, resolver: ManualResolver, updates: list[Update]) -> list[Address]:
    """Push one batch and return the full list the balancer notifies for it."""
    resolver.update(updates)
    notifications = balancer.notify()
    assert notifications is not None
    return notifications.get(timeout=DEFAULT_TIMEOUT)


def picks(balancer: Balancer, count: int) -> list[str]:
    return [balancer.get()[0].addr for _ in range(count)]


@pytest.fixture(params=[RoundRobin, PickFirst], ids=["round_robin", "pick_first"])
def any_balancer(request: pytest.FixtureRequest, resolver: ManualResolver) -> Iterator[Balancer]:
    balancer = started(request.param, resolver)
    yield balancer
    with contextlib.suppress(BalancerClosedError):
        balancer.close()


# -- bookkeeping shared by both policies ------------------------------------------------------


def test_list_keeps_insertion_order_and_skips_duplicate_adds(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    assert push(any_balancer, resolver, [Update.add(B), Update.add(A)]) == [B, A]
    assert push(any_balancer, resolver, [Update.add(A), Update.add(C), Update.add(C)]) == [B, A, C]


def test_delete_of_unknown_address_is_ignored(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    push(any_balancer, resolver, [Update.add(A), Update.add(B)])
    assert push(any_balancer, resolver, [Update.delete(C)]) == [A, B]
    # identity includes metadata: a DELETE with other metadata does not match
    assert push(any_balancer, resolver, [Update.delete(Address("a:1", {"w": 1}))]) == [A, B]
    assert push(any_balancer, resolver, [Update.delete(A), Update.add(A)]) == [B, A]


def test_a_full_list_is_notified_after_every_batch_even_without_change(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    push(any_balancer, resolver, [Update.add(A)])
    assert push(any_balancer, resolver, [Update.add(A)]) == [A]


def test_notify_keeps_only_the_latest_list(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    notifications = any_balancer.notify()
    assert notifications is not None
    resolver.update([Update.add(A)])
    resolver.update([Update.add(B)])
    resolver.update([Update.add(C)])
    deadline = time.monotonic() + DEFAULT_TIMEOUT
    while any_balancer.addresses != [A, B, C] and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.005)
    assert notifications.get(timeout=DEFAULT_TIMEOUT) == [A, B, C]
    with pytest.raises(DeadlineExceededError):
        notifications.get(timeout=SHORT_TIMEOUT)


def test_up_returns_none_when_the_address_is_already_up(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    push(any_balancer, resolver, [Update.add(A)])
    down = any_balancer.up(A)
    assert down is not None
    assert any_balancer.up(A) is None
    down(ConnectionError("gone"))
    assert any_balancer.up(A) is not None


def test_fail_fast_get_with_empty_list_raises_no_address(any_balancer: Balancer) -> None:
    with pytest.raises(NoAddressAvailableError, match="there is no address available"):
        any_balancer.get()


def test_fail_fast_get_with_nothing_connected_returns_the_next_address(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    push(any_balancer, resolver, [Update.add(A), Update.add(B)])
    assert picks(any_balancer, 4) == ["a:1", "b:1", "a:1", "b:1"]


def test_blocking_get_waits_for_up(any_balancer: Balancer, resolver: ManualResolver) -> None:
    push(any_balancer, resolver, [Update.add(A), Update.add(B)])
    got: list[Address] = []
    waiter = threading.Thread(
        target=lambda: got.append(any_balancer.get(blocking_wait=True, timeout=DEFAULT_TIMEOUT)[0]),
        name="naming-test-get",
    )
    waiter.start()
    waiter.join(SHORT_TIMEOUT)
    assert waiter.is_alive(), "blocking get returned before any address was up"
    any_balancer.up(B)
    waiter.join(DEFAULT_TIMEOUT)
    assert got == [B]


def test_blocking_get_times_out_with_deadline_exceeded(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    push(any_balancer, resolver, [Update.add(A)])
    with pytest.raises(DeadlineExceededError, match="no address became ready"):
        any_balancer.get(blocking_wait=True, timeout=SHORT_TIMEOUT)
    with pytest.raises(TimeoutError):
        any_balancer.get(blocking_wait=True, timeout=0)


def test_close_wakes_blocked_gets_with_balancer_closed(any_balancer: Balancer) -> None:
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            any_balancer.get(blocking_wait=True)
        except BaseException as exc:
            errors.append(exc)

    waiters = [threading.Thread(target=wait, name="naming-test-get") for _ in range(5)]
    for waiter in waiters:
        waiter.start()
    time.sleep(SHORT_TIMEOUT)
    any_balancer.close()
    for waiter in waiters:
        waiter.join(DEFAULT_TIMEOUT)
    assert [type(e) for e in errors] == [BalancerClosedError] * 5


def test_after_close_everything_raises_balancer_closed(
    any_balancer: Balancer, resolver: ManualResolver
) -> None:
    notifications = any_balancer.notify()
    any_balancer.close()
    with pytest.raises(BalancerClosedError):
        any_balancer.close()
    with pytest.raises(BalancerClosedError):
        any_balancer.get()
    with pytest.raises(BalancerClosedError):
        any_balancer.start("manual:///again")
    assert notifications is not None
    with pytest.raises(BalancerClosedError):
        notifications.get(timeout=SHORT_TIMEOUT)
    assert list(notifications) == []
    assert resolver.watchers == 0, "close() did not close the watcher"


def test_start_twice_raises(any_balancer: Balancer) -> None:
    with pytest.raises(NamingError, match="start\\(\\) was already called"):
        any_balancer.start("manual:///again")


@pytest.mark.parametrize("cls", [RoundRobin, PickFirst])
def test_without_resolver_the_target_is_the_only_address_and_notify_is_none(
    cls: type[Balancer],
) -> None:
    balancer = cls()
    balancer.start("10.0.0.1:50051")
    assert balancer.notify() is None
    assert balancer.get() == (Address("10.0.0.1:50051"), None)
    balancer.up(Address("10.0.0.1:50051"))
    assert balancer.get(blocking_wait=True, timeout=SHORT_TIMEOUT)[0] == Address("10.0.0.1:50051")
    balancer.close()


class _FailingWatcher(QueueWatcher):
    """Delivers its first batch, then fails the way a backend that gave up does."""

    def next(self, timeout: float | None = None) -> list[Update]:
        batch = super().next(timeout)
        self.fail(NamingError("test: the registry is gone for good"))
        return batch


class _FailingResolver(Resolver):
    """Each resolve() gives a watcher that delivers one set, then gives up; the sets come from
    ``sets`` in turn (the last one again once they run out); a None set: resolve() raises."""

    def __init__(self, *sets: list[Address] | None) -> None:
        self.sets = list(sets)
        self.resolved = 0

    def resolve(self, target: Target | str) -> QueueWatcher:
        addresses = self.sets[min(self.resolved, len(self.sets) - 1)]
        self.resolved += 1
        if addresses is None:
            raise BackendUnavailableError("test: the registry cannot be reached")
        return _FailingWatcher([Update.add(a) for a in addresses])


def test_a_watcher_that_cannot_recover_is_resolved_again_and_the_list_kept_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = _FailingResolver([A], None)
    balancer = RoundRobin(resolver)
    with caplog.at_level(logging.WARNING, logger="naming"):
        balancer.start("x")
        notifications = balancer.notify()
        assert notifications is not None
        assert notifications.get(timeout=DEFAULT_TIMEOUT) == [A]
        wait_until(lambda: resolver.resolved >= 3, message="resolved again, twice")
    assert "round_robin: the watcher of x failed (NamingError: test: the registry is gone" in (
        caplog.text
    )
    assert "round_robin: resolving x again failed: test: the registry cannot be reached" in (
        caplog.text
    )
    assert isinstance(balancer.resolver_error, BackendUnavailableError)
    assert balancer.addresses == [A]  # kept while the registry is away
    assert balancer.get()[0] == A
    balancer.close()
    assert balancer.resolver_error is not None  # closing is not a success


def test_a_new_watcher_replaces_the_list_so_addresses_gone_meanwhile_are_removed() -> None:
    resolver = _FailingResolver([A, B], [B, C])
    balancer = RoundRobin(resolver)
    channel = FakeChannel(balancer)
    balancer.start("x")
    channel.wait_for_addresses([A, B])
    channel.wait_for_addresses([B, C])
    assert balancer.addresses == [B, C]
    channel.close()
    assert resolver.resolved >= 2


# -- round_robin --------------------------------------------------------------------------------


def test_rr_rotates_in_insertion_order_over_connected_addresses(resolver: ManualResolver) -> None:
    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    for address in (A, B, C):
        balancer.up(address)
    assert picks(balancer, 7) == ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1", "a:1"]
    balancer.close()


def test_rr_skips_addresses_that_are_down(resolver: ManualResolver) -> None:
    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    downs = {address: balancer.up(address) for address in (A, B, C)}
    down_b = downs[B]
    assert down_b is not None
    down_b(None)
    assert picks(balancer, 4) == ["a:1", "c:1", "a:1", "c:1"]
    balancer.close()


def test_rr_continues_after_the_last_pick_when_an_address_comes_up(
    resolver: ManualResolver,
) -> None:
    # grpc-go TestRoundRobin: once s2 is picked, the order is s0, s1, s2, s0, ...
    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A)])
    balancer.up(A)
    push(balancer, resolver, [Update.add(B)])
    balancer.up(B)
    assert picks(balancer, 1) == ["a:1"]
    push(balancer, resolver, [Update.add(C)])
    balancer.up(C)
    assert picks(balancer, 7) == ["b:1", "c:1", "a:1", "b:1", "c:1", "a:1", "b:1"]
    balancer.close()


def test_rr_delete_of_a_connected_address_removes_it_from_rotation(
    resolver: ManualResolver,
) -> None:
    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    for address in (A, B, C):
        balancer.up(address)
    push(balancer, resolver, [Update.delete(B)])
    assert sorted(picks(balancer, 4)) == ["a:1", "a:1", "c:1", "c:1"]
    balancer.close()


def test_rr_get_is_exact_and_safe_from_many_threads_while_updates_arrive(
    resolver: ManualResolver,
) -> None:
    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    for address in (A, B, C):
        balancer.up(address)
    churn = [Address(f"10.9.9.{i}:80") for i in range(20)]
    stop = threading.Event()
    errors: list[BaseException] = []
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def churner() -> None:
        # Unconnected addresses come and go; they must never be picked while others are up.
        for i in range(400):
            if stop.is_set():
                return
            resolver.update(
                [Update.add(churn[i % 20])] if i % 2 == 0 else [Update.delete(churn[(i - 1) % 20])]
            )

    def caller() -> None:
        mine: Counter[str] = Counter()
        try:
            for _ in range(3000):
                mine[balancer.get()[0].addr] += 1
        except BaseException as exc:
            errors.append(exc)
        with lock:
            counts.update(mine)

    threads = [threading.Thread(target=caller, name="naming-test-caller") for _ in range(8)]
    threads.append(threading.Thread(target=churner, name="naming-test-churner"))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT * 3)
    stop.set()
    assert not errors
    assert not any(t.is_alive() for t in threads)
    # The picker for A, B, C is kept across the churn (the ready set never changes), so the
    # rotation is exact even under contention: 24000 picks, 8000 each.
    assert counts == {"a:1": 8000, "b:1": 8000, "c:1": 8000}
    balancer.close()


# -- pick_first ---------------------------------------------------------------------------------


def test_pf_picks_the_first_connected_address_in_list_order(resolver: ManualResolver) -> None:
    balancer = started(PickFirst, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    balancer.up(C)
    balancer.up(B)
    assert set(picks(balancer, 5)) == {"b:1"}  # both up when the first pick chooses: list order
    push(balancer, resolver, [Update.delete(B)])
    assert set(picks(balancer, 5)) == {"c:1"}
    balancer.close()


def test_pf_keeps_its_choice_when_an_earlier_address_comes_up(resolver: ManualResolver) -> None:
    balancer = started(PickFirst, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    balancer.up(C)
    assert set(picks(balancer, 5)) == {"c:1"}  # C was the only one when the choice was made
    balancer.up(A)
    balancer.up(B)
    assert set(picks(balancer, 5)) == {"c:1"}
    balancer.close()


def test_pf_stays_on_its_address_while_it_is_up(resolver: ManualResolver) -> None:
    # grpc-go TestPickFirstOrderOneServerDown: s0 down -> s1; s0 back -> still s1; s1 removed -> s0.
    balancer = started(PickFirst, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    downs = {address: balancer.up(address) for address in (A, B, C)}
    assert set(picks(balancer, 20)) == {"a:1"}
    down_a = downs[A]
    assert down_a is not None
    down_a(None)
    assert set(picks(balancer, 20)) == {"b:1"}
    balancer.up(A)
    assert set(picks(balancer, 20)) == {"b:1"}
    push(balancer, resolver, [Update.delete(B)])
    assert set(picks(balancer, 20)) == {"a:1"}
    balancer.close()


def test_pf_order_follows_the_list_after_removals_and_readds(resolver: ManualResolver) -> None:
    # grpc-go TestPickFirstOrderAllServerUp.
    balancer = started(PickFirst, resolver)
    push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
    for address in (A, B, C):
        balancer.up(address)
    assert set(picks(balancer, 20)) == {"a:1"}
    push(balancer, resolver, [Update.delete(A)])
    assert set(picks(balancer, 20)) == {"b:1"}
    push(balancer, resolver, [Update.add(A)])
    balancer.up(A)
    assert set(picks(balancer, 20)) == {"b:1"}
    push(balancer, resolver, [Update.delete(B)])
    assert set(picks(balancer, 20)) == {"c:1"}
    push(balancer, resolver, [Update.delete(C)])
    assert set(picks(balancer, 20)) == {"a:1"}
    balancer.close()


# -- create() through plugins -------------------------------------------------------------------


def test_create_builds_builtin_balancers_by_name(resolver: ManualResolver) -> None:
    assert isinstance(balancers.create("round_robin"), RoundRobin)
    balancer = balancers.create("pick_first", resolver=resolver)
    assert isinstance(balancer, PickFirst)
    assert balancer.notify() is not None


def test_create_with_unknown_name_lists_the_installed_balancers() -> None:
    with pytest.raises(
        UnknownBalancerError,
        match=r"no balancer named 'nope'; installed: .*pick_first.*round_robin",
    ):
        balancers.create("nope")


def test_create_with_a_bad_option_names_it() -> None:
    with pytest.raises(TypeError, match=r"round_robin: bad options \['weight'\]"):
        balancers.create("round_robin", weight=3)


class _CountingRoundRobin(RoundRobin):
    builds = 0

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        self.builds += 1
        return super().build_picker(state, previous)


def test_the_picker_is_built_on_the_next_get_and_only_when_the_ready_set_changed(
    resolver: ManualResolver,
) -> None:
    balancer = _CountingRoundRobin(resolver)
    balancer.start("manual:///test")
    push(balancer, resolver, [Update.add(A), Update.add(B)])
    balancer.up(A)
    balancer.up(B)
    assert balancer.builds == 0  # nothing is built until a pick needs it
    assert picks(balancer, 4) == ["a:1", "b:1", "a:1", "b:1"]
    assert balancer.builds == 1
    for i in range(20):  # unconnected addresses come and go: the picker stays
        push(
            balancer, resolver, [Update.add(f"10.1.1.{i}:80"), Update.delete(f"10.1.1.{i - 1}:80")]
        )
    assert picks(balancer, 2) == ["a:1", "b:1"]
    assert balancer.builds == 1
    balancer.up(C)  # C is not listed: nothing changes
    push(balancer, resolver, [Update.add(C)])
    balancer.up(C)
    balancer.up(C)
    assert picks(balancer, 3) == ["c:1", "a:1", "b:1"]  # the rotation goes on after b
    assert balancer.builds == 2
    balancer.close()


# -- waiting with a deadline (one wait: Condition.wait_for) -------------------------------------


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_a_timeout_of_zero_or_less_checks_once_and_does_not_wait(
    timeout: float, resolver: ManualResolver
) -> None:
    notifications = balancers.Notifications("owner")
    with pytest.raises(
        DeadlineExceededError, match=f"owner: no new address list within {timeout:.3g}s"
    ):
        notifications.get(timeout=timeout)
    notifications.publish([A])
    assert notifications.get(timeout=timeout) == [A]
    notifications.close()
    with pytest.raises(BalancerClosedError, match="owner: balancer is closed"):
        notifications.get(timeout=timeout)

    watcher = QueueWatcher([], name="w")
    assert watcher.next(timeout=timeout) == []  # the initial empty batch
    assert watcher.next(timeout=timeout) == []  # nothing: the time ran out
    watcher.push([Update.add(A)])
    assert watcher.next(timeout=timeout) == [Update.add(A)]
    watcher.fail(NamingError("w: gone"))
    with pytest.raises(NamingError, match="w: gone"):
        watcher.next(timeout=timeout)
    watcher.close()
    with pytest.raises(WatcherClosedError, match="w: watcher is closed"):
        watcher.next(timeout=timeout)

    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A)])
    with pytest.raises(
        DeadlineExceededError, match=f"round_robin: no address became ready within {timeout:.3g}s"
    ):
        balancer.get(blocking_wait=True, timeout=timeout)
    balancer.up(A)
    assert balancer.get(blocking_wait=True, timeout=timeout)[0] == A
    balancer.close()
    with pytest.raises(BalancerClosedError):
        balancer.get(blocking_wait=True, timeout=timeout)


def test_a_timeout_of_none_waits_until_the_event(resolver: ManualResolver) -> None:
    notifications = balancers.Notifications("owner")
    watcher = QueueWatcher([], name="w")
    watcher.next()
    balancer = started(RoundRobin, resolver)
    push(balancer, resolver, [Update.add(A)])
    got: list[object] = []
    waiters = [
        threading.Thread(target=lambda: got.append(notifications.get()), name="naming-test-n"),
        threading.Thread(target=lambda: got.append(watcher.next()), name="naming-test-w"),
        threading.Thread(
            target=lambda: got.append(balancer.get(blocking_wait=True)[0]), name="naming-test-b"
        ),
    ]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(SHORT_TIMEOUT)
    assert all(waiter.is_alive() for waiter in waiters) and got == []
    notifications.publish([B])
    waiters[0].join(DEFAULT_TIMEOUT)
    watcher.push([Update.add(C)])
    waiters[1].join(DEFAULT_TIMEOUT)
    balancer.up(A)
    waiters[2].join(DEFAULT_TIMEOUT)
    assert got == [[B], [Update.add(C)], A]
    notifications.close()
    watcher.close()
    balancer.close()
