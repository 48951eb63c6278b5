"""The grpc-lb experiment (reference/origin.md) on asyncio: grpc.aio servers that register in a real
etcd through naming.aio.register_server, and an aio client of 8 coroutines over naming.aio.dial.

Servers register, the client balances over them; one server goes away (deregistered first, then
stopped) and the calls move to the others without a failure; it comes back and rejoins; every
server stops and the calls wait out their deadlines; one returns and the calls go through again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import grpc

import naming.aio
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import AioEchoServer, run
from naming.testing.etcd import EtcdServer
from naming.testing.servers import PORT
from tests._aio import wait_until

Code = grpc.StatusCode
CALLERS = 8
CALL_TIMEOUT = 1.0


class Load:
    """``CALLERS`` coroutines calling PORT with wait_for_ready; what answered, per phase."""

    def __init__(self, channel: Any) -> None:
        self.method = channel.unary_unary(PORT)
        self.phase = "start"
        self.answers: dict[str, Counter[str]] = {}
        self._stop = asyncio.Event()
        self._callers: list[asyncio.Future[None]] = []

    def start(self) -> Load:
        self._callers = [asyncio.ensure_future(self._call()) for _ in range(CALLERS)]
        return self

    def enter(self, phase: str) -> Counter[str]:
        self.phase = phase
        return self.answers.setdefault(phase, Counter())

    async def _call(self) -> None:
        for _ in range(100_000):  # bounded; ends when stopped
            if self._stop.is_set():
                return
            phase = self.answers.setdefault(self.phase, Counter())
            try:
                name = (await self.method(b"", timeout=CALL_TIMEOUT, wait_for_ready=True)).decode()
            except grpc.aio.AioRpcError as error:
                name = error.code().name
            phase[name] += 1
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._callers), DEFAULT_TIMEOUT)


async def until(counts: Counter[str], what: str, **at_least: int) -> None:
    async def reached() -> bool:
        return all(counts[name] >= n for name, n in at_least.items())

    await wait_until(reached, what, DEFAULT_TIMEOUT * 2)


def test_the_grpc_lb_experiment_on_asyncio(etcd_server: EtcdServer, etcd_prefix: str) -> None:
    target = f"etcd://{etcd_server.endpoint}/greeter?prefix={etcd_prefix}"

    async def main() -> None:
        servers = [AioEchoServer(f"S{i}") for i in (1, 2, 3)]
        registrations: dict[str, Any] = {}

        async def up(server: AioEchoServer) -> None:
            await server.start()
            registrations[server.name] = await naming.aio.register_server(
                server.grpc_server, target, server.address, ttl=5, grace=1.0, signals=()
            )

        async def down(server: AioEchoServer) -> None:
            await registrations.pop(server.name).stop()  # the record first, then the server
            await server.stop()

        try:
            for server in servers:
                await up(server)
            async with naming.aio.dial(target) as channel:
                load = Load(channel).start()
                try:
                    spread = load.enter("spread")
                    await until(spread, "all three to answer", S1=20, S2=20, S3=20)

                    load.enter("S2 leaving")  # its record goes, it drains and stops
                    await down(servers[1])
                    gone = load.enter("S2 gone")
                    await until(gone, "calls without S2", S1=50, S3=50)

                    load.enter("S2 returning")
                    await up(servers[1])
                    back = load.enter("S2 back")
                    await until(back, "S2 to rejoin", S1=20, S2=20, S3=20)

                    load.enter("all leaving")  # calls started now may outlive every server
                    for server in servers:
                        await down(server)
                    none = load.enter("none")
                    await until(none, "calls to wait out their deadlines", DEADLINE_EXCEEDED=8)

                    await up(servers[2])
                    returned = load.enter("S3 returns")
                    await until(returned, "S3 to answer", S3=20)
                finally:
                    await load.stop()
        finally:
            for name in list(registrations):
                await registrations.pop(name).stop()
            for server in servers:
                await server.stop()

        answers = load.answers
        assert set(answers["spread"]) == {"S1", "S2", "S3"}
        assert set(answers["S2 gone"]) == {"S1", "S3"}  # no failure, nothing on S2
        assert set(answers["S2 back"]) == {"S1", "S2", "S3"}
        # calls that were waiting when S3 returned may be answered by it
        assert set(answers["none"]) <= {"DEADLINE_EXCEEDED", "S3"}
        assert set(answers["S3 returns"]) <= {"S3", "DEADLINE_EXCEEDED"}
        failed = {
            phase: {k: v for k, v in counts.items() if not k.startswith("S")}
            for phase, counts in answers.items()
            if phase not in ("all leaving", "none", "S3 returns")
        }
        assert all(not f for f in failed.values()), failed

    run(main(), timeout=DEFAULT_TIMEOUT * 12)
