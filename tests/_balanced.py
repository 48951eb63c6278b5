"""A BalancedChannel over real servers with a balancer the test chose (a recording one, usually)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

import naming
from balancers import Balancer
from naming.testing.servers import EchoServer, Harness, wait_for_state

__all__ = ["balanced_channel"]

B = TypeVar("B", bound=Balancer)


def balanced_channel(
    harness: Harness,
    make: Callable[[naming.Resolver], B],
    *servers: EchoServer,
    target: str | None = None,
) -> tuple[B, Any]:
    """(balancer, channel): ``make(resolver)`` started on ``target`` (default: a static target of
    ``servers``) and a BalancedChannel over it that ``harness`` closes; every server is READY."""
    target = target or "static:///" + ",".join(server.address for server in servers)
    balancer = make(naming.build_resolver(target))
    balancer.start(target)
    channel = harness.adopt(naming.BalancedChannel(target, balancer))
    for server in servers:
        wait_for_state(channel, server.address, grpc.ChannelConnectivity.READY)
    return balancer, channel
