"""naming.aio.register_server and signals: handlers through the loop, SIGTERM in a child process,
a signal or a cancellation while registering."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import uuid
from typing import Any

import grpc
import pytest

import naming
import naming.aio
from backends.manual import ManualResolver
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import AioEchoServer, call_port, run
from naming.testing.etcd import EtcdServer
from tests._etcd_helpers import Follower


def test_signal_handlers_are_installed_and_put_back_on_stop() -> None:
    name = f"aio-server-{uuid.uuid4().hex[:12]}"
    before = signal.getsignal(signal.SIGUSR1)

    async def main() -> None:
        with ManualResolver(name=name):
            async with AioEchoServer("s2") as server:
                serving = await naming.aio.register_server(
                    server.grpc_server,
                    f"manual:///{name}",
                    server.address,
                    signals=[signal.SIGUSR1],
                )
                assert signal.getsignal(signal.SIGUSR1) is not before
                async with serving:
                    pass
                assert signal.getsignal(signal.SIGUSR1) is before
                unused = await naming.aio.register_server(
                    server.grpc_server, f"manual:///{name}", "127.0.0.1:9", signals=()
                )
                assert signal.getsignal(signal.SIGUSR1) is before
                await unused.stop()

    run(main())


CHILD = """
import asyncio, logging, sys
import naming.aio
from naming.testing.aio import AioEchoServer

logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

async def main(target):
    server = await AioEchoServer("child").start()
    serving = await naming.aio.register_server(server.grpc_server, target, server.address, grace=0.5)
    print("serving on", server.address, flush=True)
    stopped = await serving.wait(60)
    print("stopped", stopped, repr(serving), flush=True)

asyncio.run(main(sys.argv[1]))
"""


def test_sigterm_deregisters_then_stops_the_server(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    target = f"etcd://{etcd_server.endpoint}/greeter?prefix={etcd_prefix}"
    follower = Follower(naming.resolve(target))
    assert follower.watcher.next(timeout=DEFAULT_TIMEOUT) == []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, target],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        before = [process.stdout.readline() for _ in range(2)]  # the backend logs its record first
        first = before[-1]
        assert "serving on" in first, before
        address = first.split("serving on")[1].strip()
        follower.wait_for({address})
        process.send_signal(signal.SIGTERM)
        follower.wait_for(set())
        output, _ = process.communicate(timeout=DEFAULT_TIMEOUT)
        assert process.returncode == 0, output
        lines = output.splitlines()
        assert "SIGTERM: deregistering, then stopping the server" in lines
        assert f"stopped True <ServerRegistration {address} as {target} stopped>" in lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(DEFAULT_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
        follower.watcher.close()


class _GatedRegistration(naming.Registration):
    def __init__(self, address: naming.Address, log: list[str]) -> None:
        self.address = address
        self._log = log
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log.append("deregistered")

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class _GatedBackend(naming.Backend):
    """register() waits for ``gate`` (a threading.Event), so a test can act while it registers."""

    schemes = ("gated",)

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.log: list[str] = []

    def build(self, target: naming.Target, **options: Any) -> naming.Resolver:
        raise NotImplementedError

    def register(
        self, target: naming.Target, address: naming.Address, *, ttl: float, **options: Any
    ) -> naming.Registration:
        self.entered.set()
        assert self.gate.wait(DEFAULT_TIMEOUT)
        self.log.append("registered")
        return _GatedRegistration(address, self.log)


def _gated(fresh_registry: Any) -> _GatedBackend:
    backend = _GatedBackend()

    class Plugin:
        @naming.hookimpl
        def naming_register_backends(self, register: Any) -> None:
            register(backend)

    fresh_registry.add_plugin(Plugin(), name="gated")
    return backend


def test_a_cancelled_register_server_deregisters_what_its_thread_registered(
    fresh_registry: Any,
) -> None:
    backend = _gated(fresh_registry)

    async def main() -> None:
        async with AioEchoServer("g0") as server:
            registering = asyncio.ensure_future(
                naming.aio.register_server(server.grpc_server, "gated:///svc", server.address)
            )
            assert await asyncio.to_thread(backend.entered.wait, DEFAULT_TIMEOUT)
            registering.cancel()
            await asyncio.sleep(0)
            backend.gate.set()  # the thread's register() now returns
            with pytest.raises(asyncio.CancelledError):
                await registering
            assert backend.log == ["registered", "deregistered"]
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
            async with grpc.aio.insecure_channel(server.address) as channel:
                assert await call_port(channel) == "g0"  # the server itself keeps serving

    run(main())


SIGNAL_WHILE_REGISTERING = """
import asyncio, os, signal, sys
import naming, naming.aio
from naming.testing.aio import AioEchoServer

log = []

class Record(naming.Registration):
    def __init__(self, address):
        self.address = address
        self._closed = False
    @property
    def closed(self):
        return self._closed
    def close(self):
        if not self._closed:
            self._closed = True
            log.append("deregistered")
    def pause(self):
        pass
    def resume(self):
        pass

class Signalling(naming.Backend):
    schemes = ("signalling",)
    def build(self, target, **options):
        raise NotImplementedError
    def register(self, target, address, *, ttl, **options):
        os.kill(os.getpid(), signal.SIGTERM)  # the signal comes while registering
        log.append("registered")
        return Record(address)

class Plugin:
    @naming.hookimpl
    def naming_register_backends(self, register):
        register(Signalling())

class Server:
    def __init__(self, server):
        self.server = server
    async def stop(self, grace):
        log.append("server stop")
        await self.server.stop(grace)
    async def wait_for_termination(self, timeout=None):
        return await self.server.wait_for_termination(timeout)

async def main():
    naming.add_plugin(Plugin())
    echo = await AioEchoServer("child").start()
    serving = await naming.aio.register_server(Server(echo.grpc_server), "signalling:///svc", echo.address)
    print(await serving.wait(10), log, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)

asyncio.run(main())
"""


def test_a_signal_while_registering_waits_for_the_record_and_removes_it_first() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIGNAL_WHILE_REGISTERING],
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT * 3,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True ['registered', 'deregistered', 'server stop'] True"]
