"""naming.register_server: register a running server; deregister first, then stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

import naming
from backends.manual import ManualResolver
from naming import Update
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.etcd import EtcdServer
from naming.testing.servers import PORT, EchoServer
from tests._etcd_helpers import Follower

EXAMPLE = Path(__file__).parent.parent / "examples" / "helloworld"


class _RecordingResolver(ManualResolver):
    """A manual resolver that, when a DELETE is pushed, checks whether the server still answers."""

    def __init__(self, server: EchoServer, name: str) -> None:
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


def test_stop_deregisters_while_the_server_still_serves_then_stops_it() -> None:
    server = EchoServer("s0").start()
    resolver = _RecordingResolver(server, name="helper-order")
    try:
        watcher = resolver.resolve()
        assert watcher.next() == []
        serving = naming.register_server(
            server._server, "manual:///helper-order", server.address, signals=()
        )
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == [Update.add(server.address)]
        stopped = serving.stop(grace=0.5)
        assert serving.stop() is stopped  # idempotent
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == [Update.delete(server.address)]
        assert resolver.served_during_delete == [True]
        assert stopped.wait(DEFAULT_TIMEOUT)
        assert serving.wait(DEFAULT_TIMEOUT)
        assert serving.registration.closed
        watcher.close()
    finally:
        resolver.close()
        server.stop()


def test_no_signal_handlers_are_installed_with_signals_empty() -> None:
    before = signal.getsignal(signal.SIGTERM)
    server = EchoServer("s1").start()
    with ManualResolver(name="helper-signals"):
        serving = naming.register_server(
            server._server, "manual:///helper-signals", server.address, signals=()
        )
        assert signal.getsignal(signal.SIGTERM) is before
        serving.stop(grace=0).wait(DEFAULT_TIMEOUT)
    server.stop()


def test_sigterm_on_the_example_server_deregisters_then_exits(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    target = f"etcd://{etcd_server.endpoint}/greeter?prefix={etcd_prefix}"
    follower = Follower(naming.resolve(target))
    assert follower.watcher.next(timeout=DEFAULT_TIMEOUT) == []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE / "server.py"),
            "--port",
            "0",
            "--register",
            target,
            "--grace",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "serving on" in first, first
        address = first.split("serving on")[1].strip()
        follower.wait_for({address})
        process.send_signal(signal.SIGTERM)
        follower.wait_for(set())
        output, _ = process.communicate(timeout=DEFAULT_TIMEOUT)
        assert process.returncode == 0, output
        assert "SIGTERM: deregistering, then stopping the server" in output
        assert f"greeter {address} stopped" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(DEFAULT_TIMEOUT)
        follower.watcher.close()


SECOND_SIGNAL = """
import os, signal, sys, threading
import naming
from naming import Backend, Registration

class SignallingRegistration(Registration):
    def __init__(self, address):
        self.address = address
        self._closed = False
    @property
    def closed(self):
        return self._closed
    def close(self):
        if not self._closed:
            self._closed = True
            os.kill(os.getpid(), signal.SIGTERM)  # the second signal, while stop() deregisters
            for _ in range(100):  # let the interpreter run the handler here
                pass
    def pause(self):
        pass
    def resume(self):
        pass

class SignallingBackend(Backend):
    schemes = ("signalling",)
    def build(self, target, **options):
        raise NotImplementedError
    def register(self, target, address, *, ttl, **options):
        return SignallingRegistration(address)

class Plugin:
    @naming.hookimpl
    def naming_register_backends(self, register):
        register(SignallingBackend())

class Server:
    def __init__(self):
        self.event = threading.Event()
    def stop(self, grace):
        self.event.set()
        return self.event
    def wait_for_termination(self, timeout=None):
        return not self.event.wait(timeout)

naming.add_plugin(Plugin())
serving = naming.register_server(Server(), "signalling:///svc", "127.0.0.1:50051")
print(repr(serving))
os.kill(os.getpid(), signal.SIGTERM)  # the first signal
print("stopped", serving.stop().wait(5), repr(serving))
"""


def test_a_second_signal_while_deregistering_does_not_deadlock() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "<ServerRegistration 127.0.0.1:50051 as signalling:///svc serving>",
        "stopped True <ServerRegistration 127.0.0.1:50051 as signalling:///svc stopped>",
    ]
