"""naming.dial() and BalancedChannel on real gRPC servers: balancing, failures, close, put, states."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import naming
from balancers import DoneInfo, RoundRobin
from naming import Address, SnapshotWatcher, Update
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT, wait_until
from naming.testing.servers import (
    COUNT,
    ECHO,
    FAIL,
    HOLD,
    PORT,
    PORTS,
    Harness,
    call_port,
    wait_for_state,
)

from ._balanced import balanced_channel

READY = grpc.ChannelConnectivity.READY


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as h:
        yield h


def ready(channel: Any) -> Any:
    grpc.channel_ready_future(channel).result(timeout=DEFAULT_TIMEOUT)
    return channel


def spread(channel: Any, calls: int, **kwargs: Any) -> Counter[str]:
    return Counter(call_port(channel, **kwargs) for _ in range(calls))


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads; their results (or exceptions), in order."""
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT * 2)
        assert not thread.is_alive(), "a call did not return"
    return results


# -- the API ----------------------------------------------------------------------------------


def test_import_naming_does_not_import_grpc() -> None:
    code = "import sys, naming; naming.dial; print('grpc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


def test_dial_returns_a_grpc_channel(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    channel = harness.dial(f"static:///{server.address}")
    assert isinstance(channel, grpc.Channel)
    assert isinstance(channel, naming.BalancedChannel)
    assert {"dial", "BalancedChannel"} <= set(naming.__all__)
    assert call_port(ready(channel)) == "s0"


def test_dial_rejects_bad_input_and_leaves_nothing_running() -> None:
    with pytest.raises(naming.UnknownBalancerError):
        naming.dial("static:///127.0.0.1:1", balancer="no_such_balancer")
    with pytest.raises(naming.UnknownSchemeError):
        naming.dial("nope:///x")
    with pytest.raises(TypeError, match="round_robin"):
        naming.dial("static:///127.0.0.1:1", bogus=1)


def test_close_is_idempotent_and_the_channel_is_a_context_manager(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    with naming.dial(f"static:///{server.address}") as channel:
        assert call_port(ready(channel)) == "s0"
    channel.close()
    assert channel.closed
    with pytest.raises(ValueError, match="Cannot invoke RPC on closed channel!"):
        call_port(channel)  # a call made after close(), as on a closed grpc channel
    assert channel.subchannels() == {}


# -- balancing ----------------------------------------------------------------------------------


def test_round_robin_spreads_300_calls_exactly_100_each(harness: Harness) -> None:
    servers = harness.start_servers(3)
    channel = harness.dial("static:///" + ",".join(s.address for s in servers))
    for server in servers:
        wait_for_state(channel, server.address, READY)
    assert spread(channel, 300) == {"s0": 100, "s1": 100, "s2": 100}


def test_stopped_server_loses_its_calls_and_rejoins_when_restarted(harness: Harness) -> None:
    servers = harness.start_servers(3)
    channel = harness.dial("static:///" + ",".join(s.address for s in servers))
    for server in servers:
        wait_for_state(channel, server.address, READY)
    servers[1].stop(grace=1.0)

    # Right after the stop the channel may still count s1 as ready: no waiting call may fail.
    def calls(i: int) -> list[str]:
        return [call_port(channel, wait_for_ready=True) for _ in range(75)]

    results = in_threads(4, calls)
    assert not [r for r in results if isinstance(r, Exception)]
    answers = Counter(name for result in results for name in result)
    assert set(answers) == {"s0", "s2"} and answers.total() == 300

    wait_for_state(channel, servers[1].address, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    assert spread(channel, 300) == {"s0": 150, "s2": 150}

    servers[1].start()
    wait_for_state(channel, servers[1].address, READY)
    assert spread(channel, 300) == {"s0": 100, "s1": 100, "s2": 100}


def test_all_servers_stopped(harness: Harness) -> None:
    servers = harness.start_servers(2)
    channel = ready(harness.dial("static:///" + ",".join(s.address for s in servers)))
    for server in servers:
        server.stop()
    for server in servers:
        wait_for_state(channel, server.address, grpc.ChannelConnectivity.TRANSIENT_FAILURE)

    timeout = 0.3
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as waited:
        call_port(channel, wait_for_ready=True, timeout=timeout)
    elapsed = time.monotonic() - start
    assert waited.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert timeout * 0.9 <= elapsed < DEFAULT_TIMEOUT

    future = channel.unary_unary(PORT).future(b"", wait_for_ready=True, timeout=timeout)
    assert future.code() is grpc.StatusCode.DEADLINE_EXCEEDED

    with pytest.raises(grpc.RpcError) as failed:
        call_port(channel)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE


def test_empty_address_list_fails_fast_with_the_balancers_message(harness: Harness) -> None:
    _, target = harness.manual()
    channel = harness.dial(target)
    wait_until(lambda: channel.connectivity() is grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    with pytest.raises(grpc.RpcError) as info:
        call_port(channel)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == f"{target}: round_robin: there is no address available"
    future = channel.unary_unary(PORT).future(b"")
    assert future.exception().code() is grpc.StatusCode.UNAVAILABLE
    stream = channel.unary_stream(PORTS)(b"2")
    with pytest.raises(grpc.RpcError):
        next(stream)
    assert stream.code() is grpc.StatusCode.UNAVAILABLE


def test_fail_fast_call_to_an_address_in_transient_failure_fails(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    address = server.address
    server.stop()
    channel = harness.dial(f"static:///{address}")
    wait_for_state(channel, address, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    with pytest.raises(grpc.RpcError) as info:
        call_port(channel)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_wait_for_ready_future_does_not_block_and_completes_once_a_server_is_up(
    harness: Harness,
) -> None:
    resolver, target = harness.manual()
    channel = harness.dial(target)
    start = time.monotonic()
    future = channel.unary_unary(PORT).future(b"", wait_for_ready=True, timeout=DEFAULT_TIMEOUT)
    assert time.monotonic() - start < DEFAULT_TIMEOUT / 2
    assert not future.done()
    (server,) = harness.start_servers(1)
    resolver.update([Update.add(server.address)])
    assert future.result(timeout=DEFAULT_TIMEOUT) == b"s0"
    assert future.code() is grpc.StatusCode.OK


def test_streams_wait_for_ready_and_deadlines(harness: Harness) -> None:
    resolver, target = harness.manual()
    channel = harness.dial(target)
    stream = channel.unary_stream(PORTS)(b"2", wait_for_ready=True, timeout=SHORT_TIMEOUT)
    assert stream.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    with pytest.raises(grpc.RpcError):
        list(stream)

    (server,) = harness.start_servers(1)
    timer = threading.Timer(SHORT_TIMEOUT, resolver.update, ([Update.add(server.address)],))
    timer.start()
    stream = channel.unary_stream(PORTS)(b"2", wait_for_ready=True, timeout=DEFAULT_TIMEOUT)
    assert list(stream) == [b"s0", b"s0"]
    timer.join()
    chat = channel.stream_stream(ECHO)(iter([b"a"]), wait_for_ready=True, timeout=DEFAULT_TIMEOUT)
    assert list(chat) == [b"s0:a"]


def test_client_interceptors_work_over_the_channel(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    seen: list[str] = []

    class Interceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            seen.append(details.method)
            return continuation(details, request)

    channel = ready(harness.dial(f"static:///{server.address}"))
    intercepted = grpc.intercept_channel(channel, Interceptor())
    assert intercepted.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT) == b"s0"
    assert intercepted.unary_unary(PORT).future(b"", timeout=DEFAULT_TIMEOUT).result() == b"s0"
    assert seen == [PORT, PORT]


def test_close_while_calls_wait_cancels_them(harness: Harness) -> None:
    _, target = harness.manual()
    channel = harness.dial(target)
    method = channel.unary_unary(PORT)
    future = method.future(b"", wait_for_ready=True)
    started = threading.Event()

    def wait(i: int) -> Any:
        started.set()
        return method(b"", wait_for_ready=True)

    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(in_threads(3, wait)))
    runner.start()
    started.wait(DEFAULT_TIMEOUT)
    time.sleep(SHORT_TIMEOUT)
    start = time.monotonic()
    channel.close()
    runner.join(DEFAULT_TIMEOUT)
    assert time.monotonic() - start < DEFAULT_TIMEOUT
    assert [r.code() for r in results] == [grpc.StatusCode.CANCELLED] * 3
    assert future.exception(timeout=DEFAULT_TIMEOUT).code() is grpc.StatusCode.CANCELLED


def test_close_cancels_calls_in_flight(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    channel = ready(harness.dial(f"static:///{server.address}"))
    future = channel.unary_unary(HOLD).future(b"", timeout=DEFAULT_TIMEOUT)
    wait_until(lambda: server.held == 1)
    channel.close()
    assert future.code() is grpc.StatusCode.CANCELLED


def test_future_can_be_cancelled(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    channel = ready(harness.dial(f"static:///{server.address}"))
    future = channel.unary_unary(HOLD).future(b"", timeout=DEFAULT_TIMEOUT)
    wait_until(lambda: server.held == 1)
    assert future.cancel()
    assert future.cancelled() and future.done()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    wait_until(lambda: server.held == 0)


# -- subchannels ------------------------------------------------------------------------------


def test_subchannels_follow_the_address_list(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = harness.dial(target)
    wait_for_state(channel, s0.address, READY)
    first = channel.subchannels()[Address(s0.address)]
    resolver.set_addresses([s0.address, s1.address])
    wait_for_state(channel, s1.address, READY)
    assert channel.subchannels()[Address(s0.address)] is first
    resolver.set_addresses([s1.address])
    wait_until(lambda: first.closed, what="the removed subchannel to close")
    assert list(channel.subchannels()) == [Address(s1.address)]
    assert spread(channel, 10) == {"s1": 10}


def test_removed_address_is_closed_after_its_calls_finish(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    resolver, target = harness.manual([s0])
    channel = ready(harness.dial(target))
    held = channel.unary_unary(HOLD).future(b"", timeout=DEFAULT_TIMEOUT)
    wait_until(lambda: s0.held == 1)
    subchannel = channel.subchannels()[Address(s0.address)]
    resolver.set_addresses([s1.address])
    wait_until(lambda: Address(s0.address) not in channel.subchannels())
    time.sleep(SHORT_TIMEOUT)
    assert not subchannel.closed and subchannel.in_flight == 1
    s0.release.set()
    assert held.result(timeout=DEFAULT_TIMEOUT) == b"s0"
    wait_until(lambda: subchannel.closed, what="the drained subchannel to close")


def test_removed_address_is_closed_after_the_grace_period(harness: Harness) -> None:
    (s0,) = harness.start_servers(1)
    resolver, target = harness.manual([s0])
    balancer = RoundRobin(resolver=naming.build_resolver(target))
    balancer.start(target)
    channel = harness.adopt(naming.BalancedChannel(target, balancer, drain_grace=0.2))
    ready(channel)
    held = channel.unary_unary(HOLD).future(b"", timeout=DEFAULT_TIMEOUT)
    wait_until(lambda: s0.held == 1)
    resolver.set_addresses([])
    assert held.code() is grpc.StatusCode.CANCELLED


def test_credentials_and_options_apply_to_every_subchannel(harness: Harness) -> None:
    local = grpc.LocalConnectionType.LOCAL_TCP
    servers = harness.start_servers(2, credentials=grpc.local_server_credentials(local))
    target = "static:///" + ",".join(s.address for s in servers)
    channel = harness.dial(
        target,
        credentials=grpc.local_channel_credentials(local),
        options=[("grpc.primary_user_agent", "channel-test/1.0")],
    )
    for server in servers:
        wait_for_state(channel, server.address, READY)
    assert spread(channel, 4) == {"s0": 2, "s1": 2}
    for server in servers:
        assert all(agent.startswith("channel-test/1.0") for agent in server.user_agents)
        assert server.security == ["local", "local"]


def test_without_a_resolver_the_channel_dials_the_target_itself(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    balancer = RoundRobin()
    balancer.start(server.address)
    assert balancer.notify() is None
    channel = harness.adopt(naming.BalancedChannel(server.address, balancer))
    assert call_port(ready(channel)) == "s0"
    assert list(channel.subchannels()) == [Address(server.address)]


# -- every call reports to put ------------------------------------------------------------------


class Recording(RoundRobin):
    """round_robin whose put records every DoneInfo; ``stale`` is returned by the next
    ``stale_picks`` get() calls (one by default)."""

    name = "recording_round_robin"

    def __init__(self, resolver: naming.Resolver) -> None:
        super().__init__(resolver)
        self.infos: list[DoneInfo] = []
        self.stale: Address | None = None
        self.stale_picks = 1

    def get(self, *, blocking_wait: bool = False, timeout: float | None = None) -> Any:
        if self.stale is not None:
            address = self.stale
            self.stale_picks -= 1
            if self.stale_picks <= 0:
                self.stale, self.stale_picks = None, 1
        else:
            address, _ = super().get(blocking_wait=blocking_wait, timeout=timeout)
        return address, self.infos.append


def recording_channel(harness: Harness, *servers: Any) -> tuple[Recording, Any]:
    return balanced_channel(harness, Recording, *servers)


def test_put_receives_the_outcome_of_every_call(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    balancer, channel = recording_channel(harness, server)

    assert channel.unary_unary(PORT)(b"") == b"s0"
    assert channel.unary_unary(PORT).with_call(b"")[0] == b"s0"
    assert channel.unary_unary(PORT).future(b"").result() == b"s0"
    with pytest.raises(grpc.RpcError):
        channel.unary_unary(FAIL)(b"")
    assert list(channel.unary_stream(PORTS)(b"3")) == [b"s0"] * 3
    assert channel.stream_unary(COUNT)(iter([b"a", b"b"])) == b"s0:2"
    assert list(channel.stream_stream(ECHO)(iter([b"x", b"y"]))) == [b"s0:x", b"s0:y"]

    expected = ["OK", "OK", "OK", "NOT_FOUND", "OK", "OK", "OK"]
    wait_until(lambda: len(balancer.infos) == len(expected))
    assert [info.code.name for info in balancer.infos] == expected
    assert all(info.latency > 0 for info in balancer.infos)
    assert balancer.infos[3].error is not None
    assert balancer.infos[3].error.code() is grpc.StatusCode.NOT_FOUND


def test_a_call_never_sent_is_picked_again_when_its_server_is_gone(harness: Harness) -> None:
    s0, s1 = harness.start_servers(2)
    balancer, channel = recording_channel(harness, s0, s1)
    s0.stop()
    wait_for_state(channel, s0.address, grpc.ChannelConnectivity.TRANSIENT_FAILURE)

    # The balancer hands out s0 as if it had not noticed yet: the call must end on s1.
    balancer.stale = Address(s0.address)
    assert call_port(channel, wait_for_ready=True) == "s1"
    balancer.stale = Address(s0.address)
    future = channel.unary_unary(PORT).future(b"", wait_for_ready=True, timeout=DEFAULT_TIMEOUT)
    assert future.result() == b"s1"
    codes = [info.code for info in balancer.infos]
    assert codes == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK] * 2

    # A fail-fast call that was never sent is picked once more, at once: it ends on s1 too.
    balancer.stale = Address(s0.address)
    assert call_port(channel) == "s1"
    balancer.stale = Address(s0.address)
    assert channel.unary_unary(PORT).future(b"", timeout=DEFAULT_TIMEOUT).result() == b"s1"
    # Only once: picked stale twice, it fails with UNAVAILABLE.
    balancer.stale, balancer.stale_picks = Address(s0.address), 2
    with pytest.raises(grpc.RpcError) as info:
        call_port(channel)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    balancer.stale, balancer.stale_picks = Address(s0.address), 2
    future = channel.unary_unary(PORT).future(b"", timeout=DEFAULT_TIMEOUT)
    assert future.exception().code() is grpc.StatusCode.UNAVAILABLE


# -- connectivity -----------------------------------------------------------------------------


class HeldResolver(naming.Resolver):
    """Resolves to a SnapshotWatcher that has nothing until the test publishes."""

    def __init__(self) -> None:
        self.watcher = SnapshotWatcher()

    def resolve(self, target: Any) -> SnapshotWatcher:
        return self.watcher


def test_connectivity_goes_idle_connecting_ready_shutdown(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    resolver = HeldResolver()
    balancer = RoundRobin(resolver=resolver)
    balancer.start("held:///x")
    channel = harness.adopt(naming.BalancedChannel("held:///x", balancer))
    states: list[Any] = []
    channel.subscribe(states.append, try_to_connect=True)
    assert states == [grpc.ChannelConnectivity.IDLE]
    resolver.watcher.publish([Address(server.address)])
    wait_until(lambda: states[-1] is READY)
    assert grpc.ChannelConnectivity.CONNECTING in states
    other: list[Any] = []
    channel.subscribe(other.append)
    wait_until(lambda: other == [READY])
    channel.unsubscribe(other.append)
    channel.close()
    assert states[-1] is grpc.ChannelConnectivity.SHUTDOWN
    assert other == [READY]
