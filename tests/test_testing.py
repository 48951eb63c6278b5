"""naming.testing: the helpers that users and plugin authors test with."""

from __future__ import annotations

import pytest

from balancers import PickFirst, RoundRobin
from naming import Address, DeadlineExceededError, Update
from naming.testing import SHORT_TIMEOUT, FakeChannel, ManualResolver, wait_until


def test_fake_channel_connects_what_is_notified_and_round_robin_covers_it() -> None:
    with ManualResolver(["a:1", "b:1"]) as resolver:
        balancer = RoundRobin(resolver)
        balancer.start("manual:///svc")
        channel = FakeChannel(balancer)
        channel.wait_for_addresses(["a:1", "b:1"])
        channel.wait_for_round_robin(["a:1", "b:1"])
        resolver.update([Update.add("c:1"), Update.delete("a:1")])
        channel.wait_for_addresses(["b:1", "c:1"])
        channel.wait_for_round_robin(["b:1", "c:1"])
        assert channel.connected == {Address("b:1"), Address("c:1")}
        channel.close()
        channel.close()


def test_fake_channel_without_auto_up_leaves_connections_to_the_test() -> None:
    with ManualResolver(["a:1", "b:1"]) as resolver:
        balancer = PickFirst(resolver)
        balancer.start("manual:///svc")
        channel = FakeChannel(balancer, auto_up=False)
        channel.wait_for_addresses(["a:1", "b:1"])
        assert channel.connected == set()
        with pytest.raises(DeadlineExceededError):
            balancer.get(blocking_wait=True, timeout=SHORT_TIMEOUT)
        channel.up("b:1")
        assert balancer.get(blocking_wait=True, timeout=SHORT_TIMEOUT)[0] == Address("b:1")
        channel.down("b:1")
        with pytest.raises(DeadlineExceededError):
            balancer.get(blocking_wait=True, timeout=SHORT_TIMEOUT)
        channel.close()


def test_wait_for_round_robin_fails_when_the_rotation_is_not_the_expected_one() -> None:
    with ManualResolver(["a:1", "b:1"]) as resolver:
        balancer = PickFirst(resolver)
        balancer.start("manual:///svc")
        channel = FakeChannel(balancer)
        channel.wait_for_addresses(["a:1", "b:1"])
        with pytest.raises(DeadlineExceededError, match="round robin over"):
            channel.wait_for_round_robin(["a:1", "b:1"], timeout=0.2)
        channel.close()


def test_fake_channel_needs_a_resolver() -> None:
    balancer = RoundRobin()
    balancer.start("a:1")
    with pytest.raises(ValueError, match="needs a balancer started with a resolver"):
        FakeChannel(balancer)
    balancer.close()


def test_wait_until_raises_at_its_timeout() -> None:
    with pytest.raises(DeadlineExceededError, match="testing: never not met within"):
        wait_until(lambda: False, timeout=SHORT_TIMEOUT, message="never")
    wait_until(lambda: True, timeout=0)
