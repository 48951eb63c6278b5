"""naming.aio.register_server: a grpc.aio server's record, removed before the server stops."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import grpc
import pytest

import naming
import naming.aio
from backends.manual import ManualResolver
from naming import Update
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import AioEchoServer, call_port, run
from naming.testing.etcd import EtcdServer
from naming.testing.servers import HOLD, PORT


class _DeleteChecks(ManualResolver):
    """A manual resolver that, when a DELETE is pushed, asks the server whether it still answers.

    ``update()`` runs in the executor thread that deregisters, so a sync call can reach the aio
    server while the loop is free.
    """

    def __init__(self, server: AioEchoServer, name: str) -> None:
        super().__init__(name=name)
        self.server = server
        self.served_during_delete: list[bool] = []

    def update(self, updates: Any) -> None:
        batch = list(updates)
        if any(u.op is naming.Operation.DELETE for u in batch):
            with grpc.insecure_channel(self.server.address) as channel:
                try:
                    channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT)
                    self.served_during_delete.append(True)
                except grpc.RpcError:
                    self.served_during_delete.append(False)
        super().update(batch)


def test_stop_deregisters_while_the_server_serves_then_stops_it() -> None:
    name = f"aio-server-{uuid.uuid4().hex[:12]}"

    async def main() -> None:
        server = await AioEchoServer("s0").start()
        resolver = _DeleteChecks(server, name)
        try:
            async with naming.aio.resolve(f"manual:///{name}") as watcher:
                assert await watcher.next() == []
                serving = await naming.aio.register_server(
                    server.grpc_server, f"manual:///{name}", server.address, signals=()
                )
                assert (
                    repr(serving)
                    == f"<ServerRegistration {server.address} as manual:///{name} serving>"
                )
                assert await watcher.next(DEFAULT_TIMEOUT) == [Update.add(server.address)]
                await serving.stop(grace=0.5)
                assert await watcher.next(DEFAULT_TIMEOUT) == [Update.delete(server.address)]
            assert resolver.served_during_delete == [True]
            assert await serving.wait(DEFAULT_TIMEOUT)
            assert not await serving.wait_for_termination(DEFAULT_TIMEOUT)
            assert serving.registration is not None and serving.registration.closed
            assert repr(serving).endswith(" stopped>")
        finally:
            resolver.close()
            await server.stop()

    run(main())


def test_stop_is_idempotent_and_a_second_call_waits_for_the_first() -> None:
    name = f"aio-server-{uuid.uuid4().hex[:12]}"

    async def main() -> None:
        with ManualResolver(name=name) as resolver:
            async with AioEchoServer("s1") as server:
                serving = await naming.aio.register_server(
                    server.grpc_server, f"manual:///{name}", server.address, signals=()
                )
                assert resolver.addresses == [naming.Address(server.address)]
                first = asyncio.ensure_future(serving.stop())
                await asyncio.sleep(0)
                assert repr(serving).endswith(" stopping>")
                await serving.stop()  # while the first runs: the same outcome
                assert first.done()
                assert resolver.addresses == []
                assert await serving.wait(0)
                await serving.stop()  # after it: at once
                await first

    run(main())


def test_a_call_in_flight_finishes_within_the_grace_after_the_record_is_gone() -> None:
    name = f"aio-server-{uuid.uuid4().hex[:12]}"

    async def main() -> None:
        with ManualResolver(name=name) as resolver:
            server = await AioEchoServer("s4").start()
            serving = await naming.aio.register_server(
                server.grpc_server, f"manual:///{name}", server.address, signals=()
            )
            async with grpc.aio.insecure_channel(server.address) as channel:
                held = channel.unary_unary(HOLD)(b"", timeout=DEFAULT_TIMEOUT)
                for _ in range(1000):  # bounded: about 10 s
                    if server.held:
                        break
                    await asyncio.sleep(0.01)
                stopping = asyncio.ensure_future(serving.stop(grace=DEFAULT_TIMEOUT))
                for _ in range(1000):
                    if not resolver.addresses:
                        break
                    await asyncio.sleep(0.01)
                assert resolver.addresses == []  # deregistered; the held call still runs
                assert not stopping.done()
                assert server.held == 1
                server.release.set()
                assert await held == b"s4"
                await stopping
            assert await serving.wait(0)
            with pytest.raises(ValueError, match="aio: grace must be a finite number"):
                await serving.stop(grace=-1)
            await server.stop()

    run(main())


def test_bad_arguments_are_refused_before_anything_is_registered() -> None:
    name = f"aio-server-{uuid.uuid4().hex[:12]}"

    async def main() -> None:
        with ManualResolver(name=name) as resolver:
            async with AioEchoServer("s3") as server:
                target, addr, aio = f"manual:///{name}", server.address, server.grpc_server
                cases: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
                    (object(), {}, TypeError, "aio: register_server needs a started grpc.aio"),
                    (aio, {"grace": -1}, ValueError, "aio: grace must be a finite number"),
                    (aio, {"grace": "5"}, TypeError, "aio: grace must be a number of seconds"),
                    (aio, {"grace": float("nan")}, ValueError, "aio: grace must be a finite"),
                    (aio, {"signals": ["TERM"]}, TypeError, "aio: signals must be signal numbers"),
                    (aio, {"signals": [signal.SIGKILL]}, ValueError, "aio: SIGKILL cannot be"),
                    (aio, {"ttl": 0}, ValueError, "ttl"),
                ]
                for bad_server, kwargs, error, message in cases:
                    with pytest.raises(error, match=message):
                        await naming.aio.register_server(bad_server, target, addr, **kwargs)
                with pytest.raises(ValueError, match="bind-all"):
                    await naming.aio.register_server(aio, target, "0.0.0.0:1", signals=())
                assert resolver.addresses == []
                assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    run(main())


def test_on_etcd_the_record_is_gone_before_the_server_stops(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    target = f"etcd://{etcd_server.endpoint}/svc?prefix={etcd_prefix}"
    timeline: list[str] = []

    class Watched:
        """The real aio server, with a look at the registry and at itself just before it stops."""

        def __init__(self, server: AioEchoServer) -> None:
            self.echo = server

        async def stop(self, grace: float | None) -> None:
            async with naming.aio.resolve(target) as fresh:
                timeline.append(f"records {await fresh.next(DEFAULT_TIMEOUT)}")
            async with grpc.aio.insecure_channel(self.echo.address) as channel:
                timeline.append(f"answered {await call_port(channel)}")
            await self.echo.grpc_server.stop(grace)
            timeline.append("stopped")

        async def wait_for_termination(self, timeout: float | None = None) -> bool:
            return bool(await self.echo.grpc_server.wait_for_termination(timeout))

    async def main() -> None:
        async with AioEchoServer("e0") as server, naming.aio.resolve(target) as watcher:
            assert await watcher.next(DEFAULT_TIMEOUT) == []
            serving = await naming.aio.register_server(
                Watched(server), target, server.address, signals=(), ttl=5
            )
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.add(server.address)]
            await serving.stop(grace=0.2)
            assert await watcher.next(DEFAULT_TIMEOUT) == [Update.delete(server.address)]
            assert await serving.wait(DEFAULT_TIMEOUT)
        assert timeline == ["records []", "answered e0", "stopped"]

    run(main())
