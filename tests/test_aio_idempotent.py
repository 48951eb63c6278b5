"""Idempotent methods through naming.aio.dial: the same policy as the sync channel's.

Child-process servers (bench._servers) SIGKILLed with calls running in them; the Pinning balancer
of tests/test_channel_idempotent.py puts four calls on the victim first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import naming
import naming.aio
from bench._server import SLOW
from bench._servers import ChildServer, child_servers
from naming import Address
from naming.channel._policy import unsent
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import run
from tests._aio import wait_until
from tests.test_channel_idempotent import HELD_MS, SETTLE, Pinning

Code = grpc.StatusCode
READY = grpc.ChannelConnectivity.READY


@pytest.fixture
def servers() -> Iterator[list[ChildServer]]:
    with child_servers(3) as started:  # every child is killed at exit
        yield started


async def killed_under_calls(
    servers: list[ChildServer], idempotent: tuple[str, ...]
) -> tuple[list[Any], Pinning]:
    """Four wait_for_ready SLOW calls pinned on servers[0], which is SIGKILLed while they run:
    their outcomes (the server's name, or the error) and the balancer."""
    target = "static:///" + ",".join(server.address for server in servers)
    balancer = Pinning(naming.build_resolver(target))
    balancer.start(target)
    channel = naming.aio.BalancedChannel(target, balancer, idempotent=idempotent)
    victim = servers[0]
    try:

        async def all_ready() -> bool:
            subchannels = channel.subchannels().values()
            return len(subchannels) == 3 and all(s.state is READY for s in subchannels)

        await wait_until(all_ready, "three ready subchannels")
        method = channel.unary_unary(SLOW, _registered_method=True)
        balancer.pin(victim, victim, victim, victim)
        calls = [method(HELD_MS, timeout=DEFAULT_TIMEOUT, wait_for_ready=True) for _ in range(4)]

        async def on_victim() -> bool:
            return channel.subchannels()[Address(victim.address)].in_flight == 4

        await wait_until(on_victim, "4 calls on the victim")
        await asyncio.sleep(SETTLE)  # they reach the server, which holds them for HELD_MS
        victim.kill()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), DEFAULT_TIMEOUT * 2
        )
        return [o if isinstance(o, BaseException) else o.decode() for o in outcomes], balancer
    finally:
        await channel.close()


def test_idempotent_calls_survive_a_sigkill_of_their_server(servers: list[ChildServer]) -> None:
    outcomes, balancer = run(killed_under_calls(servers, ("/bench.Echo/*",)))
    assert all(isinstance(outcome, str) for outcome in outcomes), outcomes
    assert set(outcomes) <= {"s2", "s3"}
    codes = balancer.codes()  # every attempt reported: four died with the victim, four succeeded
    assert codes.count(Code.OK) == 4
    assert codes.count(Code.UNAVAILABLE) >= 4
    assert set(codes) == {Code.OK, Code.UNAVAILABLE}


def test_other_calls_fail_with_their_server(servers: list[ChildServer]) -> None:
    outcomes, _ = run(killed_under_calls(servers, ("/other.Service/*",)))
    failed = [outcome for outcome in outcomes if isinstance(outcome, grpc.RpcError)]
    assert failed, outcomes
    assert {error.code() for error in failed} == {Code.UNAVAILABLE}
    assert not any(unsent(error) for error in failed)  # they had reached the victim
