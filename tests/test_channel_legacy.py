"""The legacy grpc-go v1 balancer scenarios (reference/legacy-grpc-go-api.md section 7), on naming.dial.

Each test ports one of grpc-go's balancer_test.go (7.1 round robin, 7.2 pick first) or
clientconn_test.go (TestConnectivityStates) tests: real servers on 127.0.0.1, the manual resolver as
grpc-go's testNameResolver, and the PORT method as its "port" request. Where grpc-go slept or
polled without bound, these poll every 10 ms for at most DEFAULT_TIMEOUT.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from naming import Update
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT, wait_until
from naming.testing.servers import EchoServer, Harness, call_port, wait_for_server, wait_for_state

READY = grpc.ChannelConnectivity.READY
Code = grpc.StatusCode


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as h:
        yield h


def dial_ready(harness: Harness, target: str, balancer: str = "round_robin") -> Any:
    channel = harness.dial(target, balancer=balancer)
    grpc.channel_ready_future(channel).result(timeout=DEFAULT_TIMEOUT)
    return channel


def add(server: EchoServer) -> Update:
    return Update.add(server.address)


def delete(server: EchoServer) -> Update:
    return Update.delete(server.address)


def failure(call: Any) -> grpc.RpcError | None:
    """Run ``call()``; the RpcError it raised, or None."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc
    return None


def wait_for_failure(call: Any) -> grpc.RpcError:
    """Repeat ``call()`` every 10 ms until it raises an RpcError; return that error."""
    errors: list[grpc.RpcError] = []

    def failed() -> bool:
        error = failure(call)
        if error is not None:
            errors.append(error)
        return error is not None

    wait_until(failed, what="a call to fail")
    return errors[-1]


def wait_until_blocked_in_get(channel: Any) -> None:
    """grpc-go's loop: until a wait_for_ready call with a short deadline ends DEADLINE_EXCEEDED."""

    def short_call() -> None:
        call_port(channel, wait_for_ready=True, timeout=SHORT_TIMEOUT)

    while True:
        error = wait_for_failure(short_call)
        if error.code() is Code.DEADLINE_EXCEEDED:
            return


def concurrently(count: int, work: Any, *, during: Any) -> list[Any]:
    """Start ``count`` threads running ``work()`` 10 ms from now and run ``during()`` meanwhile.

    Returns each thread's result or exception; fails if a thread is still running after 20 s.
    """
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        time.sleep(0.01)
        try:
            results[i] = work()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.01)
    during()
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT * 2)
        assert not thread.is_alive(), "a call never returned"
    return results


# -- 7.1 round robin ----------------------------------------------------------------------------


def test_name_discovery(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target)
    assert call_port(channel) == "s0"
    resolver.update([delete(s0), add(s1)])
    wait_for_server(channel, "s1")


@pytest.mark.parametrize("balancer", ["round_robin", "pick_first"])
def test_empty_addrs(harness: Harness, balancer: str) -> None:
    (s0,) = harness.start_servers(1)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target, balancer)
    assert call_port(channel) == "s0"
    resolver.update([delete(s0)])
    error = wait_for_failure(lambda: call_port(channel, timeout=SHORT_TIMEOUT))
    assert error.code() is Code.UNAVAILABLE
    assert error.details() == f"{target}: {balancer}: there is no address available"


def test_round_robin(harness: Harness) -> None:
    servers = harness.start_servers(3)
    resolver, target = harness.manual(servers[:1])
    channel = dial_ready(harness, target)
    resolver.update([add(servers[1])])
    wait_for_server(channel, "s1")
    resolver.update([add(servers[2])])
    wait_for_server(channel, "s2")
    assert [call_port(channel) for _ in range(10)] == [f"s{i % 3}" for i in range(10)]


@pytest.mark.parametrize("balancer", ["round_robin", "pick_first"])
def test_close_with_pending_rpc(harness: Harness, balancer: str) -> None:
    (s0,) = harness.start_servers(1)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target, balancer)
    assert call_port(channel, wait_for_ready=True) == "s0"
    resolver.update([delete(s0)])
    wait_until_blocked_in_get(channel)

    def pending() -> Any:
        return call_port(channel, wait_for_ready=True, timeout=None)

    def close_soon() -> None:
        time.sleep(0.005)
        channel.close()

    results = concurrently(2, pending, during=close_soon)
    assert [r.code() for r in results] == [Code.CANCELLED, Code.CANCELLED]


def test_get_on_wait_channel(harness: Harness) -> None:
    (s0,) = harness.start_servers(1)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target)
    resolver.update([delete(s0)])
    wait_until_blocked_in_get(channel)
    results = concurrently(
        1,
        lambda: call_port(channel, wait_for_ready=True),
        during=lambda: resolver.update([add(s0)]),
    )
    assert results == ["s0"]


def test_one_server_down(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target)
    resolver.update([add(s1)])
    wait_for_server(channel, "s1")
    time.sleep(0.01)
    results = concurrently(100, lambda: call_port(channel, wait_for_ready=True), during=s0.stop)
    # grpc-go asserts only that every call returns. Calls that were running on s0 when it stopped
    # are cancelled by the server (UNAVAILABLE or CANCELLED); no call waits out its deadline.
    errors = [r for r in results if not isinstance(r, str)]
    assert all(isinstance(e, grpc.RpcError) for e in errors), errors
    assert {e.code() for e in errors} <= {Code.UNAVAILABLE, Code.CANCELLED}
    assert call_port(channel, wait_for_ready=True) == "s1"


def test_one_address_removal(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target)
    resolver.update([add(s1)])
    wait_for_server(channel, "s1")
    time.sleep(0.01)
    results = concurrently(
        100,
        lambda: call_port(channel, wait_for_ready=True),
        during=lambda: resolver.update([delete(s0)]),
    )
    assert set(results) <= {"s0", "s1"}, [r for r in results if r not in ("s0", "s1")]
    assert call_port(channel) == "s1"


# -- 7.2 pick first -----------------------------------------------------------------------------


def twenty_calls(channel: Any) -> set[str]:
    return {call_port(channel) for _ in range(20)}


def test_pick_first_order_all_servers_up(harness: Harness) -> None:
    s0, s1, s2 = harness.start_servers(3)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target, "pick_first")
    resolver.update([add(s1)])
    resolver.update([add(s2)])
    for server in (s0, s1, s2):
        wait_for_state(channel, server.address, READY)
    assert twenty_calls(channel) == {"s0"}

    resolver.update([delete(s0)])
    wait_for_server(channel, "s1")
    assert twenty_calls(channel) == {"s1"}

    resolver.update([add(s0)])  # the list is now [s1, s2, s0]: s1 stays picked
    wait_for_state(channel, s0.address, READY)
    assert twenty_calls(channel) == {"s1"}

    resolver.update([delete(s1)])
    wait_for_server(channel, "s2")
    assert twenty_calls(channel) == {"s2"}

    resolver.update([delete(s2)])
    wait_for_server(channel, "s0")
    assert twenty_calls(channel) == {"s0"}


def test_pick_first_order_one_server_down(harness: Harness) -> None:
    s0, s1, s2 = harness.start_servers(3)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target, "pick_first")
    resolver.update([add(s1), add(s2)])
    for server in (s0, s1, s2):
        wait_for_state(channel, server.address, READY)
    assert twenty_calls(channel) == {"s0"}

    s0.stop()  # the list is unchanged
    wait_for_server(channel, "s1")
    assert twenty_calls(channel) == {"s1"}

    s0.start()  # on the same port
    wait_for_state(channel, s0.address, READY)
    assert twenty_calls(channel) == {"s1"}

    resolver.update([delete(s1)])  # the first ready address in list order: s0
    wait_for_server(channel, "s0")
    assert twenty_calls(channel) == {"s0"}


def test_pick_first_one_address_removal(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = dial_ready(harness, target, "pick_first")
    resolver.update([add(s1)])
    for server in (s0, s1):
        wait_for_state(channel, server.address, READY)
    results = concurrently(
        100,
        lambda: call_port(channel, wait_for_ready=True),
        during=lambda: resolver.update([delete(s0)]),
    )
    assert set(results) <= {"s0", "s1"}, [r for r in results if r not in ("s0", "s1")]
    assert twenty_calls(channel) == {"s1"}


# -- 7.3 clientconn_test.go -------------------------------------------------------------------


def test_connectivity_states(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = harness.dial(target)
    states: list[Any] = []
    channel.subscribe(states.append)

    def reaches(state: Any) -> None:
        wait_until(lambda: states[-1] is state, what=f"the channel to be {state.name}")

    reaches(READY)
    resolver.update([delete(s0)])
    reaches(grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    resolver.update([add(s1)])
    reaches(READY)
