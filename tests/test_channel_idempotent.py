"""Idempotent methods: a unary-unary call that failed with UNAVAILABLE on a server that died is
picked again when its method was declared idempotent, and fails as before when it was not.

The servers are child processes (bench._servers.ChildServer) so that they can be SIGKILLed with
calls running in them. A balancer that hands out a chosen address for the next picks puts the calls
on the victim, deterministically, before it is killed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import naming
from balancers import DoneInfo, RoundRobin
from bench._server import SLOW
from bench._servers import ChildServer, child_servers
from naming import Address
from naming.channel._policy import unsent
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.servers import wait_for_state

Code = grpc.StatusCode
READY = grpc.ChannelConnectivity.READY

HELD_MS = b"1500"  # server time of the calls in flight when their server is killed
SETTLE = 0.4  # lets the picked calls reach the victim, even on a busy machine
NOPE = "/bench.Echo/Nope"  # a method the bench servers do not have: UNIMPLEMENTED


class Pinning(RoundRobin):
    """round_robin that returns the addresses in ``pinned`` first, one per pick, and whose put
    records every DoneInfo."""

    name = "pinning_round_robin"

    def __init__(self, resolver: naming.Resolver) -> None:
        super().__init__(resolver)
        self.infos: list[DoneInfo] = []
        self.pinned: list[Address] = []
        self._pin_lock = threading.Lock()

    def pin(self, *servers: ChildServer) -> None:
        with self._pin_lock:
            self.pinned.extend(Address(server.address) for server in servers)

    def get(self, *, blocking_wait: bool = False, timeout: float | None = None) -> Any:
        with self._pin_lock:
            address = self.pinned.pop(0) if self.pinned else None
        if address is None:
            address, _ = super().get(blocking_wait=blocking_wait, timeout=timeout)
        return address, self.infos.append

    def codes(self) -> list[Any]:
        return [info.code for info in self.infos]


@pytest.fixture
def servers() -> Iterator[list[ChildServer]]:
    with child_servers(3) as started:  # every child is killed at exit
        yield started


class Dialled:
    """A BalancedChannel over ``servers`` with a Pinning balancer; closed by the caller."""

    def __init__(self, servers: list[ChildServer], idempotent: tuple[str, ...]) -> None:
        target = "static:///" + ",".join(server.address for server in servers)
        self.balancer = Pinning(naming.build_resolver(target))
        self.balancer.start(target)
        self.channel = naming.BalancedChannel(target, self.balancer, idempotent=idempotent)
        try:
            for server in servers:
                wait_for_state(self.channel, server.address, READY)
        except BaseException:
            self.channel.close()
            raise

    def running_on(self, server: ChildServer) -> int:
        subchannel = self.channel.subchannels().get(Address(server.address))
        return 0 if subchannel is None else subchannel.in_flight


def in_flight_then_kill(
    dialled: Dialled, victim: ChildServer, wait_for_ready: bool, after: tuple[ChildServer, ...] = ()
) -> list[Any]:
    """Start four SLOW calls pinned on ``victim`` (two blocking, in threads: ``__call__`` and
    ``with_call``; two ``future()``), SIGKILL it while they run, and return their outcomes
    (the reply's server name, or the exception). ``after``: addresses for the picks after those."""
    method = dialled.channel.unary_unary(SLOW, _registered_method=True)
    dialled.balancer.pin(victim, victim, victim, victim, *after)
    outcomes: list[Any] = [None] * 4
    options = {"timeout": DEFAULT_TIMEOUT, "wait_for_ready": wait_for_ready}

    def blocking(i: int) -> None:
        try:
            if i == 0:
                outcomes[i] = method(HELD_MS, **options).decode()
            else:
                outcomes[i] = method.with_call(HELD_MS, **options)[0].decode()
        except grpc.RpcError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=blocking, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    futures = [method.future(HELD_MS, **options) for _ in range(2)]
    try:
        wait_until(lambda: dialled.running_on(victim) == 4, what="4 calls on the victim")
        time.sleep(SETTLE)  # they reach the server, which holds them for HELD_MS
        victim.kill()
    finally:
        for thread in threads:
            thread.join(DEFAULT_TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a call did not return"
    for i, future in enumerate(futures, start=2):
        error = future.exception(timeout=DEFAULT_TIMEOUT * 2)
        outcomes[i] = error if error is not None else future.result().decode()
    return outcomes


def test_idempotent_wait_for_ready_calls_survive_a_sigkill_of_their_server(
    servers: list[ChildServer],
) -> None:
    victim = servers[0]
    dialled = Dialled(servers, idempotent=("/bench.Echo/*",))
    try:
        outcomes = in_flight_then_kill(dialled, victim, wait_for_ready=True)
    finally:
        dialled.channel.close()
    assert all(isinstance(outcome, str) for outcome in outcomes), outcomes
    assert set(outcomes) <= {"s2", "s3"}
    # Every attempt reported to put: the four that died with the victim, then four successes.
    codes = dialled.balancer.codes()
    assert codes.count(Code.OK) == 4
    assert codes.count(Code.UNAVAILABLE) >= 4
    assert set(codes) == {Code.OK, Code.UNAVAILABLE}


def test_a_full_method_name_is_enough(servers: list[ChildServer]) -> None:
    victim = servers[1]
    dialled = Dialled(servers, idempotent=(SLOW,))
    try:
        outcomes = in_flight_then_kill(dialled, victim, wait_for_ready=True)
    finally:
        dialled.channel.close()
    assert all(isinstance(outcome, str) for outcome in outcomes), outcomes
    assert set(outcomes) <= {"s1", "s3"}


def test_idempotent_fail_fast_calls_get_one_more_pick(servers: list[ChildServer]) -> None:
    victim, other = servers[0], servers[1]
    dialled = Dialled(servers, idempotent=("/bench.Echo/*",))
    try:
        # Each call's second pick is `other`: all four end there.
        outcomes = in_flight_then_kill(dialled, victim, False, after=(other,) * 4)
        assert outcomes == ["s2"] * 4
        # Only one more: a fail-fast call whose second pick is the dead victim fails.
        dialled.balancer.pin(victim, victim)
        with pytest.raises(grpc.RpcError) as info:
            dialled.channel.unary_unary(SLOW)(b"0", timeout=DEFAULT_TIMEOUT)
        assert info.value.code() is Code.UNAVAILABLE
    finally:
        dialled.channel.close()


@pytest.mark.parametrize("wait_for_ready", [True, False])
def test_calls_to_other_methods_still_fail_when_their_server_is_killed(
    servers: list[ChildServer], wait_for_ready: bool
) -> None:
    victim = servers[0]
    dialled = Dialled(servers, idempotent=("/other.Service/*", "/bench.Echo/Echo"))
    try:
        outcomes = in_flight_then_kill(dialled, victim, wait_for_ready, after=(servers[1],) * 4)
    finally:
        dialled.channel.close()
    failed = [outcome for outcome in outcomes if isinstance(outcome, grpc.RpcError)]
    assert failed, outcomes
    assert {error.code() for error in failed} == {Code.UNAVAILABLE}
    assert not any(unsent(error) for error in failed)  # they had reached the victim


def test_by_default_no_method_is_idempotent(servers: list[ChildServer]) -> None:
    victim = servers[2]
    dialled = Dialled(servers, idempotent=())
    try:
        outcomes = in_flight_then_kill(dialled, victim, wait_for_ready=True)
    finally:
        dialled.channel.close()
    failed = [outcome for outcome in outcomes if isinstance(outcome, grpc.RpcError)]
    assert failed, outcomes
    assert {error.code() for error in failed} == {Code.UNAVAILABLE}


@pytest.mark.parametrize(
    "entry",
    [
        "bench.Echo/Slow",  # no leading slash
        "/bench.Echo",  # no method
        "/bench.Echo/",  # empty method
        "//Slow",  # empty service
        "/bench.Echo/Slow/x",  # too many parts
        "/bench.*/Slow",  # a wildcard service
        "/bench.Echo/Sl*",  # a partial wildcard
        "",
        "/",
    ],
)
def test_a_bad_entry_is_a_value_error_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match="idempotent") as info:
        naming.dial("static:///127.0.0.1:1", idempotent=[SLOW, entry])
    assert repr(entry) in str(info.value)


def test_dial_passes_idempotent_to_the_channel_and_rejects_a_str() -> None:
    with naming.dial("static:///127.0.0.1:1", idempotent=["/a.B/*", "/c.D/E"]) as channel:
        assert channel.is_idempotent("/a.B/Anything")
        assert channel.is_idempotent("/c.D/E")
        assert not channel.is_idempotent("/c.D/F")
        assert not channel.is_idempotent("/a.Bc/X")
    with naming.dial("static:///127.0.0.1:1") as channel:
        assert not channel.is_idempotent(SLOW)
    with pytest.raises(TypeError):
        naming.dial("static:///127.0.0.1:1", idempotent=SLOW)


def test_failures_other_than_unavailable_are_not_retried(servers: list[ChildServer]) -> None:
    dialled = Dialled(servers, idempotent=("/bench.Echo/*",))
    channel, balancer = dialled.channel, dialled.balancer
    try:
        slow = channel.unary_unary(SLOW)
        cases = [
            (channel.unary_unary(NOPE), b"", DEFAULT_TIMEOUT, Code.UNIMPLEMENTED),
            (slow, b"not a number", DEFAULT_TIMEOUT, Code.UNKNOWN),  # the handler raises
            (slow, b"2000", 0.2, Code.DEADLINE_EXCEEDED),
        ]
        for method, request, timeout, code in cases:
            for how in ("call", "future"):
                balancer.infos.clear()
                if how == "call":
                    with pytest.raises(grpc.RpcError) as info:
                        method(request, timeout=timeout, wait_for_ready=True)
                    error = info.value
                else:
                    future = method.future(request, timeout=timeout, wait_for_ready=True)
                    error = future.exception(timeout=DEFAULT_TIMEOUT)
                assert error.code() is code, (how, error)
                # One attempt, reported once: the call was not picked again.
                wait_until(lambda: balancer.infos, what="the attempt to be reported")
                assert balancer.codes() == [code], (how, code)
    finally:
        channel.close()
