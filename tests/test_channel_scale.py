"""The channel at scale: a change costs O(changes), and no thread runs per subchannel.

The balancer hands the channel what changed (``Notifications.changes()``), the channel applies it
without looking at the other addresses, and one poller on the channel's own thread reads every
subchannel's connectivity. Costs are counted (function calls, threads), never timed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import grpc
import pytest

from balancers import Notifications, RoundRobin
from naming import Address, BalancerClosedError, DeadlineExceededError, Update
from naming.channel._poller import CHUNK, Poller
from naming.channel._subchannels import Subchannels
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.process import free_ports
from naming.testing.servers import Harness, call_port

from ._balanced import balanced_channel

State = grpc.ChannelConnectivity
A, B, C, D = (Address(f"10.0.0.{i}:1") for i in range(1, 5))
QUIET = (  # refused addresses stay in TRANSIENT_FAILURE for the whole test
    ("grpc.initial_reconnect_backoff_ms", 60_000),
    ("grpc.min_reconnect_backoff_ms", 60_000),
)


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as h:
        yield h


@contextmanager
def calls_of(function: Callable[..., Any]) -> Iterator[list[int]]:
    """Count the calls of the Python ``function`` in every thread (those started inside too)."""
    code = function.__code__
    count = [0]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            count[0] += 1

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # None clears it


def refused(count: int) -> list[str]:
    """``count`` addresses on 127.0.0.1 that nobody listens on."""
    return [f"127.0.0.1:{port}" for port in free_ports(count)]


# -- Notifications: changes, not copies -------------------------------------------------------------


def test_changes_since_the_last_read_come_as_changes_the_last_change_of_an_address_winning() -> (
    None
):
    notifications = Notifications("owner")
    listed = [A, B]
    notifications.publish_changes([A, B], [], lambda: list(listed))
    first = notifications.changes(0)
    assert (list(first.added), list(first.removed), first.full) == ([A, B], [], None)
    notifications.publish_changes([C], [A], lambda: list(listed))
    notifications.publish_changes([A], [C], lambda: list(listed))  # A back, C gone again
    both = notifications.changes(0)
    assert (list(both.added), list(both.removed), both.full) == ([A], [C], None)
    with pytest.raises(DeadlineExceededError):
        notifications.changes(0)  # nothing since


def test_a_full_list_published_is_read_as_a_full_list_until_read_once() -> None:
    notifications = Notifications("owner")
    notifications.publish([A])
    notifications.publish_changes([B], [], lambda: [A, B])  # the reader never saw [A]
    full = notifications.changes(0)
    assert (list(full.added), list(full.removed), full.full) == ([], [], [A, B])
    notifications.publish_changes([C], [A], lambda: [B, C])
    after = notifications.changes(0)
    assert (list(after.added), list(after.removed), after.full) == ([C], [A], None)
    notifications.close()
    with pytest.raises(BalancerClosedError):
        notifications.changes(0)


def test_get_still_gives_full_lists_latest_wins() -> None:
    notifications = Notifications("owner")
    notifications.publish_changes([A], [], lambda: [A])
    notifications.publish_changes([B], [], lambda: [A, B])
    assert notifications.get(0) == [A, B]
    notifications.publish_changes([C], [], lambda: [A, B, C])
    after_get = notifications.changes(0)  # what changed since get() read the list
    assert (list(after_get.added), list(after_get.removed)) == ([C], [])
    notifications.close()


def test_round_robin_hands_out_only_what_each_batch_really_changed() -> None:
    from backends.manual import ManualResolver

    resolver = ManualResolver([A, B])
    balancer = RoundRobin(resolver)
    balancer.start("manual:///x")
    notifications = balancer.notify()
    assert notifications is not None
    first = notifications.changes(DEFAULT_TIMEOUT)
    assert (list(first.added), list(first.removed)) == ([A, B], [])
    # a duplicate ADD and the DELETE of an unknown address change nothing
    resolver.update([Update.add(C), Update.add(A), Update.delete(D), Update.delete(B)])
    second = notifications.changes(DEFAULT_TIMEOUT)
    assert (list(second.added), list(second.removed), second.full) == ([C], [B], None)
    resolver.update([Update.add(D)])
    assert notifications.get(DEFAULT_TIMEOUT) == [A, C, D]  # the legacy read: the full list
    balancer.close()
    resolver.close()


# -- the channel: O(changes) ----------------------------------------------------------------------


def test_one_change_of_a_list_of_1000_touches_no_other_address(harness: Harness) -> None:
    resolver, target = harness.manual(refused(1000))
    channel = harness.dial(target, options=QUIET)
    with calls_of(Address.__hash__) as hashes:
        assert channel.wait_for_subchannels(lambda subs: len(subs) == 1000, DEFAULT_TIMEOUT)
        wait_until(lambda: channel.connectivity() is State.TRANSIENT_FAILURE)
        (extra,) = refused(1)
        hashes[0] = 0
        resolver.update([Update.add(extra)])
        assert channel.wait_for_subchannels(lambda subs: Address(extra) in subs, DEFAULT_TIMEOUT)
        resolver.update([Update.delete(extra)])
        assert channel.wait_for_subchannels(
            lambda subs: Address(extra) not in subs, DEFAULT_TIMEOUT
        )
        touched = hashes[0]
    # the resolver, the balancer and the channel each hash the changed address a few times; a
    # full list compared with the set would hash all 1,000
    assert touched < 100, touched


def test_a_full_list_is_compared_with_dictionaries_not_lists() -> None:
    """The path of balancers that hand out only full lists: O(n + m), not O(n * m)."""
    addresses = refused(300)
    subchannels = Subchannels(RoundRobin(), options=QUIET)
    try:
        subchannels.update(Address(a) for a in addresses)
        with calls_of(Address.__eq__) as comparisons:
            subchannels.update([Address(a) for a in [*addresses, "127.0.0.1:1"]])  # equal copies
        assert len(subchannels.current) == 301
        assert comparisons[0] <= 3 * 301, comparisons[0]  # a list scan: about 45,000
    finally:
        subchannels.close()


# -- the channel: no thread per subchannel ----------------------------------------------------------


def test_a_channel_over_300_addresses_adds_two_threads_not_one_per_subchannel(
    harness: Harness,
) -> None:
    _, target = harness.manual(refused(300))
    before = set(threading.enumerate())
    channel = harness.dial(target, options=QUIET)
    assert channel.wait_for_subchannels(lambda subs: len(subs) == 300, DEFAULT_TIMEOUT)
    wait_until(lambda: channel.connectivity() is State.TRANSIENT_FAILURE)
    started = sorted(t.name for t in threading.enumerate() if t not in before)
    assert len(started) == 2, started  # the balancer's watch thread and the channel's own
    assert started[0].startswith("naming-channel-") and started[1] == "naming-watch-round_robin"
    assert all(subchannel.polled for subchannel in channel.subchannels().values())


def test_polled_connectivity_still_reaches_up_and_down(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    balancer, channel = balanced_channel(harness, RoundRobin, s0, s1)
    assert {call_port(channel) for _ in range(4)} == {"s0", "s1"}
    s0.stop()
    wait_until(lambda: balancer.get()[0] == Address(s1.address) == balancer.get()[0])
    assert {call_port(channel) for _ in range(4)} == {"s1"}


def test_without_the_private_api_a_subchannel_follows_grpcs_subscription(
    harness: Harness,
) -> None:
    (server,) = harness.start_servers(1)
    balancer = RoundRobin()
    balancer.start(server.address)
    subchannels = Subchannels(balancer, poll=False)
    try:
        subchannels.update([Address(server.address)])
        subchannel = subchannels.current[Address(server.address)]
        assert not subchannel.polled
        wait_until(lambda: subchannel.state is State.READY, what="READY through subscribe()")
        assert subchannels.interval() is None  # nothing to poll
        assert balancer.get(blocking_wait=True, timeout=DEFAULT_TIMEOUT)[0] == subchannel.address
    finally:
        subchannels.close()
        balancer.close()


# -- the poller's schedule --------------------------------------------------------------------------


class _Polled:
    """A stand-in subchannel for the schedule: it counts its polls."""

    polled = True

    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> None:
        self.polls += 1


def test_the_poller_sweeps_in_chunks_spread_over_the_sweep() -> None:
    now = [100.0]
    subchannels = [_Polled() for _ in range(5 * CHUNK)]
    poller = Poller(lambda: subchannels, clock=lambda: now[0])  # type: ignore[arg-type, return-value]
    assert [poller.poll() for _ in range(2)] == [CHUNK, 0]  # the second is not due yet
    gap = poller.wait()
    assert gap == pytest.approx(max(0.02, 5 * CHUNK * 40e-6) / 5)
    for _ in range(4):
        now[0] += gap
        assert poller.poll() == CHUNK
    assert [s.polls for s in subchannels] == [1] * len(subchannels)
    now[0] += gap
    assert poller.poll() == CHUNK and poller.sweeps == 2  # a new sweep
    few = Poller(lambda: subchannels[:3], clock=lambda: now[0])  # type: ignore[arg-type, return-value]
    assert few.poll() == 3 and few.wait() == pytest.approx(0.02)
