"""naming.testing: the helpers that users and plugin authors test with."""

from __future__ import annotations

import re
import socket
import sys
import threading

import grpc
import pytest

from balancers import PickFirst, RoundRobin
from naming import Address, DeadlineExceededError, Update
from naming.testing import (
    DEFAULT_TIMEOUT,
    SHORT_TIMEOUT,
    FakeChannel,
    LeakCheck,
    ManualResolver,
    is_round_robin,
    round_robin_mismatch,
    wait_until,
)
from naming.testing.process import ManagedProcess
from naming.testing.proxy import TcpProxy
from naming.testing.servers import Harness, call_port, wait_for_server


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


def test_wait_until_returns_the_truthy_value_and_takes_what_as_the_message() -> None:
    values = iter([0, "", "ready"])
    assert wait_until(lambda: next(values), timeout=DEFAULT_TIMEOUT, interval=0.001) == "ready"
    with pytest.raises(DeadlineExceededError, match="testing: the thing not met within"):
        wait_until(lambda: None, timeout=SHORT_TIMEOUT, what="the thing")


# -- is_round_robin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "picks"),
    [
        (["a:1"], ["a:1", "a:1", "a:1"]),
        (["a:1", "b:1"], ["a:1", "b:1", "a:1", "b:1"]),
        (["a:1", "b:1"], ["b:1", "a:1", "b:1", "a:1", "b:1"]),  # another order, a partial round
        (["a:1", "a:1", "b:1"], ["a:1", "b:1", "a:1", "a:1", "b:1", "a:1"]),  # weighted 2:1
        (["a:1", "b:1", "a:1"], ["a:1", "a:1", "b:1", "a:1", "a:1", "b:1"]),
    ],
)
def test_is_round_robin_accepts_rotations(wanted: list[str], picks: list[str]) -> None:
    assert is_round_robin(wanted, picks)
    assert round_robin_mismatch(wanted, [Address(p) for p in picks]) is None


@pytest.mark.parametrize(
    ("wanted", "picks", "why"),
    [
        (["a:1"], ["a:1", "b:1", "a:1"], r"pick 1 \(b:1\) does not repeat pick 0"),
        (["a:1", "b:1"], ["a:1", "a:1", "b:1", "b:1"], r"pick 1 \(a:1\) is one more than the 1"),
        (["a:1", "a:1", "b:1"], ["a:1", "a:1", "a:1"], r"pick 2 \(a:1\) is one more than the 2"),
        (["a:1", "a:1", "b:1"], ["a:1", "b:1", "b:1"], r"pick 2 \(b:1\) is one more than the 1"),
        (
            ["a:1", "a:1", "b:1"],
            ["a:1", "b:1", "a:1", "b:1", "a:1", "a:1"],  # a permutation, then not the same one
            r"pick 3 \(b:1\) does not repeat pick 0",
        ),
        (["a:1", "b:1"], ["a:1", "c:1"], r"pick 1 \(c:1\) is one more than the 0"),
        (["a:1", "b:1", "c:1"], ["a:1", "b:1"], "2 picks do not make one round of 3"),
    ],
)
def test_is_round_robin_rejects_what_is_not_a_rotation(
    wanted: list[str], picks: list[str], why: str
) -> None:
    assert not is_round_robin(wanted, picks)
    assert re.search(why, round_robin_mismatch(wanted, picks) or "")


def test_is_round_robin_needs_a_wanted_address() -> None:
    with pytest.raises(ValueError, match="at least one wanted address"):
        is_round_robin([], ["a:1"])


# -- the leak check ----------------------------------------------------------------------------


def _idle_thread(name: str, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=stop.wait, args=(DEFAULT_TIMEOUT,), name=name, daemon=True)
    thread.start()
    return thread


def test_leak_check_reports_our_threads_started_after_it_until_they_end() -> None:
    stop = threading.Event()
    before = _idle_thread("naming-test-before", stop)
    check = LeakCheck(grace=SHORT_TIMEOUT)
    ours = _idle_thread("naming-test-leak", stop)
    other = _idle_thread("someone-elses", stop)
    try:
        assert check.leaks() == ["thread naming-test-leak still running"]
        with pytest.raises(AssertionError, match="still running after the test: thread naming-"):
            check.check()
        everything = LeakCheck(threads=lambda thread: True, grace=SHORT_TIMEOUT)
        assert everything.leaks() == []
    finally:
        stop.set()
        for thread in (before, ours, other):
            thread.join(DEFAULT_TIMEOUT)
    assert check.leaks() == []
    check.check()


class _Channel:
    def __init__(self) -> None:
        self.open = {"a:1": object(), "b:1": object()}

    def subchannels(self) -> dict[str, object]:
        return dict(self.open)

    def __repr__(self) -> str:
        return "<channel under test>"


def test_leak_check_reports_a_tracked_channel_that_keeps_subchannels() -> None:
    check = LeakCheck(grace=SHORT_TIMEOUT)
    channel = check.track(_Channel())
    assert check.leaks() == ["<channel under test> kept 2 subchannels: ['a:1', 'b:1']"]
    channel.open.clear()
    assert check.wait() == []


def test_leak_check_reports_a_child_process_left_running() -> None:
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    check = LeakCheck(grace=SHORT_TIMEOUT)
    with ManagedProcess(lambda process: command, healthy=lambda process: True) as process:
        process.start()
        (leak,) = check.leaks()
        assert leak.startswith("process <ManagedProcess") and leak.endswith("still running")
    assert check.wait() == []


# -- TcpProxy ----------------------------------------------------------------------------------


def _connect(endpoint: str) -> socket.socket:
    host, port = endpoint.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=DEFAULT_TIMEOUT)
    sock.settimeout(DEFAULT_TIMEOUT)
    return sock


def test_tcp_proxy_forwards_until_cut_and_again_once_healed() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as upstream,
        TcpProxy(f"127.0.0.1:{upstream.getsockname()[1]}") as proxy,
    ):
        upstream.settimeout(DEFAULT_TIMEOUT)
        client = _connect(proxy.endpoint)
        client.sendall(b"ping")
        served, _ = upstream.accept()
        served.settimeout(DEFAULT_TIMEOUT)
        assert served.recv(16) == b"ping"
        served.sendall(b"pong")
        assert client.recv(16) == b"pong"
        assert proxy.connections == 1
        proxy.cut()
        assert client.recv(16) == b""  # closed by the cut, on both sides
        assert served.recv(16) == b""
        refused = _connect(proxy.endpoint)
        assert refused.recv(16) == b""  # accepted, then closed at once
        assert proxy.is_cut and proxy.connections == 0
        proxy.heal()
        again = _connect(proxy.endpoint)
        again.sendall(b"back")
        served_again, _ = upstream.accept()
        served_again.settimeout(DEFAULT_TIMEOUT)
        assert served_again.recv(16) == b"back"
        for sock in (client, served, refused, again, served_again):
            sock.close()
    assert "closed" in repr(proxy)
    proxy.close()  # idempotent


def test_tcp_proxy_cut_makes_a_grpc_channel_fail_and_heal_brings_it_back() -> None:
    with Harness() as harness:
        (server,) = harness.start_servers(1)
        with TcpProxy(server.address) as proxy:
            channel = harness.dial(f"static:///{proxy.endpoint}")
            assert call_port(channel, wait_for_ready=True) == "s0"  # dial() does not wait
            proxy.cut()
            wait_until(lambda: _fails(channel), what="a call to fail while cut")
            proxy.heal()
            wait_for_server(channel, "s0")
            channel.close()


def _fails(channel: object) -> bool:
    try:
        call_port(channel, timeout=1)
    except grpc.RpcError as exc:
        return bool(exc.code() is grpc.StatusCode.UNAVAILABLE)
    return False
