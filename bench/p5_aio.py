"""p5a: failed calls through ``naming.aio.dial`` while one of three registered servers goes away.

p5's scenarios on the asyncio channel. A private etcd; for each scenario a fresh key prefix
(``p5_failures.fresh_target``), three child-process servers registered under it and a fresh
``naming.aio.dial`` round_robin channel on that target. p5's four callers are coroutines here,
calling ``/bench.Echo/Slow`` (5 ms in the server) with a 2 s timeout through
``channel.unary_unary(SLOW)``. Once all three servers have answered, the load runs for a while, one
server goes away, the load runs on, and every call that did not end OK in that window is counted:

* graceful: ``ChildServer.stop()`` (SIGTERM: the record is deleted, then the server stops with a
  grace period), fail-fast calls. It runs in a thread (``asyncio.to_thread``), so the calls go
  on while the server deregisters and drains;
* SIGKILL with ``wait_for_ready=True`` calls. ``p5_aio_inflight_at_kill`` is the number of calls
  running on the victim's subchannel at the signal (``Subchannel.in_flight``). The kill (the
  signal, then reaping the process: a few ms) runs on the loop, which holds the callers still
  meanwhile: no call can be sent to the victim between the count and its death, so the count is
  every call the kill can fail. A call is not sent again once it has left the client (the
  method may have run), so up to that many may fail.

With logging at INFO each scenario logs its replies by server and every failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

import naming.aio
from naming.core import Address
from naming.testing.etcd import EtcdServer

from ._aio import Loop, all_answer, ended
from ._server import SLOW
from ._servers import ChildServer, child_servers
from .p5_failures import (
    CALL_TIMEOUT,
    JOIN_TIMEOUT,
    MAX_CALLS,
    SERVER_MS,
    THREADS,
    fresh_target,
)

__all__ = ["run"]

log = logging.getLogger(__name__)

Action = Callable[[naming.aio.BalancedChannel, ChildServer], Awaitable[int]]


class Load:
    """THREADS coroutines calling SLOW through ``call`` until ``stop()`` or ``limit`` seconds.

    ``ok`` counts the replies by server name; ``failures`` holds (seconds since start, code,
    details) of every call that did not end OK.
    """

    def __init__(self, call: Any, wait_for_ready: bool, limit: float) -> None:
        self._call = call
        self._wait_for_ready = wait_for_ready
        self._limit = limit
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.started = 0.0
        self.ok: Counter[str] = Counter()
        self.failures: list[tuple[float, str, str]] = []

    def start(self) -> Load:
        self.started = time.monotonic()
        self._tasks = [asyncio.ensure_future(self._caller()) for _ in range(THREADS)]
        return self

    async def stop(self) -> None:
        self._stopping = True
        if not await ended(self._tasks, JOIN_TIMEOUT):
            raise RuntimeError("bench p5a: a caller coroutine did not stop")

    async def _caller(self) -> None:
        end = self.started + self._limit
        calls = 0
        while not self._stopping and calls < MAX_CALLS and time.monotonic() < end:
            calls += 1
            try:
                reply = await self._call(
                    SERVER_MS, timeout=CALL_TIMEOUT, wait_for_ready=self._wait_for_ready
                )
            except grpc.RpcError as exc:
                at = time.monotonic() - self.started
                self.failures.append((at, exc.code().name, exc.details() or ""))
            else:
                self.ok[reply.decode()] += 1


def _running_on(channel: naming.aio.BalancedChannel, victim: ChildServer) -> int:
    """The calls running now on the channel's subchannel to ``victim``."""
    subchannel = channel.subchannels().get(Address(victim.address))
    return 0 if subchannel is None else subchannel.in_flight


async def _stop(channel: naming.aio.BalancedChannel, victim: ChildServer) -> int:
    """Stop ``victim`` gracefully, in a thread; the calls running on it at the signal."""
    running = _running_on(channel, victim)
    await asyncio.to_thread(victim.stop)  # returns once the process has exited
    return running


async def _kill(channel: naming.aio.BalancedChannel, victim: ChildServer) -> int:
    """SIGKILL ``victim``, holding the loop until it is reaped; the calls running on it then."""
    running = _running_on(channel, victim)
    victim.kill()
    return running


async def _scenario(
    etcd: EtcdServer, name: str, action: Action, wait_for_ready: bool, before: float, after: float
) -> tuple[int, int]:
    """(failed calls, calls running on the victim at the signal) of one scenario."""
    target = fresh_target(etcd)
    with child_servers(3, register=target) as servers:
        victim = servers[0]
        channel = naming.aio.dial(target, balancer="round_robin")
        try:
            call = channel.unary_unary(SLOW, _registered_method=True)
            await all_answer(call, b"0", servers)
            load = Load(call, wait_for_ready, before + after + CALL_TIMEOUT + 5.0).start()
            try:
                await asyncio.sleep(before)
                acted = time.monotonic() - load.started
                running = await action(channel, victim)
                await asyncio.sleep(after)
            finally:
                await load.stop()
        finally:
            await channel.close()
    log.info(
        "p5a %s: ok %s; %d running on the victim at the signal; %d failed: %s",
        name,
        dict(load.ok),
        running,
        len(load.failures),
        [(round(at - acted, 4), code, details[:50]) for at, code, details in load.failures],
    )
    return len(load.failures), running


def run(quick: bool) -> dict[str, float]:
    before, after = (0.5, 1.5) if quick else (1.0, 4.0)
    with EtcdServer() as etcd, Loop() as loop:
        etcd.start()
        graceful, _ = loop.run(_scenario(etcd, "graceful", _stop, False, before, after))
        wfr, in_flight = loop.run(_scenario(etcd, "sigkill-wfr", _kill, True, before, after))
    return {
        "p5_aio_failed_graceful": graceful,  # counts: ints, shown as such in the table
        "p5_aio_failed_sigkill_wfr": wfr,
        "p5_aio_inflight_at_kill": in_flight,
    }
