"""Real gRPC servers on 127.0.0.1 for tests, and a harness that cleans everything up (docs/testing.md).

Every :class:`EchoServer` answers the methods of ``naming.test.Echo`` (raw bytes, no protobuf) with
its own name, so a test sees which server took each call; ``services=`` adds generated servicers
(a Greeter, a health service). It can be stopped and restarted on the same port. :class:`Harness`
starts servers, manual resolvers and balanced channels for one test and, on exit, closes them all
and checks (with a :class:`naming.testing.LeakCheck` over every thread) that no subchannel and no
new thread survives.

The methods, by full name: ``PORT`` (unary-unary: the server's name), ``PORTS`` (unary-stream: the
name, ``int(request)`` times), ``COUNT`` (stream-unary: ``b"<name>:<number of requests>"``),
``ECHO`` (stream-stream: ``b"<name>:<request>"`` for each request), ``FAIL`` (aborts with
NOT_FOUND), ``HOLD`` (answers once the server's ``release`` event is set, or the call ends).
:func:`call_port`, :func:`wait_for_server` and :func:`wait_for_state` are the calls tests make most.
This module imports grpc; ``naming.testing`` itself does not.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import grpc

import naming
from backends.manual import ManualResolver
from naming import Address

from . import _wait
from ._leaks import LeakCheck
from ._wait import wait_until

__all__ = [
    "COUNT",
    "ECHO",
    "FAIL",
    "FAST_RECONNECT",
    "HOLD",
    "PORT",
    "PORTS",
    "SERVICE",
    "EchoServer",
    "Harness",
    "call_port",
    "wait_for_server",
    "wait_for_state",
]

SERVICE = "naming.test.Echo"
PORT = f"/{SERVICE}/Port"  # unary-unary: the server's name
PORTS = f"/{SERVICE}/Ports"  # unary-stream: the name, int(request) times
COUNT = f"/{SERVICE}/Count"  # stream-unary: b"<name>:<number of requests>"
ECHO = f"/{SERVICE}/Echo"  # stream-stream: b"<name>:<request>" for every request
FAIL = f"/{SERVICE}/Fail"  # unary-unary: aborts with NOT_FOUND
HOLD = f"/{SERVICE}/Hold"  # unary-unary: answers once ``release`` is set (or the call ends)

# Quick reconnects, so that a restarted server rejoins in well under a second.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
)


class EchoServer:
    """An in-process grpc server named ``name``; ``start()``, ``stop()``, ``restart()``.

    ``calls`` counts the calls it handled; ``held`` counts HOLD calls waiting for ``release``.
    ``credentials`` (server credentials) makes it a secure port; ``services(self, grpc_server)``
    adds other services (a generated servicer). Start and stop it from one thread at a time.
    """

    def __init__(
        self,
        name: str,
        *,
        credentials: Any = None,
        services: Callable[[EchoServer, Any], None] | None = None,
    ) -> None:
        self.name = name
        self._services = services
        self.port = 0
        self.release = threading.Event()
        self.user_agents: list[str] = []
        self.security: list[str] = []  # the transport security type of every call
        self._credentials = credentials
        self._calls = 0
        self._held = 0
        self._lock = threading.Lock()
        self._server: Any = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def grpc_server(self) -> Any:
        """The ``grpc.Server`` while running (for ``naming.register_server``); None otherwise."""
        return self._server

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    def start(self) -> EchoServer:
        """Start serving; on the port it had before, if it ran before."""
        assert self._server is None, f"{self.name} is already running"
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"srv-{self.name}")
        server = grpc.server(self._executor)
        server.add_generic_rpc_handlers((self._handler(),))
        if self._services is not None:
            self._services(self, server)
        bind = f"127.0.0.1:{self.port}"
        if self._credentials is None:
            port = server.add_insecure_port(bind)
        else:
            port = server.add_secure_port(bind, self._credentials)
        if port == 0:
            self._executor.shutdown(wait=False)
            raise RuntimeError(f"{self.name}: cannot bind {bind}")
        self.port = port
        server.start()
        self._server = server
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop serving (``grace`` seconds for calls in flight) and wait until it has stopped."""
        server, self._server = self._server, None
        if server is None:
            return
        self.release.set()
        server.stop(grace).wait(_wait.DEFAULT_TIMEOUT)
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = None
        self.release.clear()

    def restart(self) -> EchoServer:
        self.stop()
        return self.start()

    def _count(self, context: Any) -> None:
        agent = dict(context.invocation_metadata()).get("user-agent", "")
        security = context.auth_context().get("transport_security_type", [b"?"])[0].decode()
        with self._lock:
            self._calls += 1
            self.user_agents.append(agent)
            self.security.append(security)

    def _handler(self) -> Any:
        name = self.name.encode()

        def port(request: bytes, context: Any) -> bytes:
            self._count(context)
            return name

        def ports(request: bytes, context: Any) -> Iterator[bytes]:
            self._count(context)
            for _ in range(int(request or b"1")):
                yield name

        def count(requests: Iterable[bytes], context: Any) -> bytes:
            self._count(context)
            return name + b":" + str(sum(1 for _ in requests)).encode()

        def echo(requests: Iterable[bytes], context: Any) -> Iterator[bytes]:
            self._count(context)
            for request in requests:
                yield name + b":" + request

        def fail(request: bytes, context: Any) -> bytes:
            self._count(context)
            context.abort(grpc.StatusCode.NOT_FOUND, f"{self.name}: nothing here")
            raise AssertionError("unreachable")

        def hold(request: bytes, context: Any) -> bytes:
            self._count(context)
            with self._lock:
                self._held += 1
            try:
                deadline = time.monotonic() + _wait.DEFAULT_TIMEOUT
                while context.is_active() and time.monotonic() < deadline:
                    if self.release.wait(0.01):
                        break
            finally:
                with self._lock:
                    self._held -= 1
            return name

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Port": grpc.unary_unary_rpc_method_handler(port),
                "Ports": grpc.unary_stream_rpc_method_handler(ports),
                "Count": grpc.stream_unary_rpc_method_handler(count),
                "Echo": grpc.stream_stream_rpc_method_handler(echo),
                "Fail": grpc.unary_unary_rpc_method_handler(fail),
                "Hold": grpc.unary_unary_rpc_method_handler(hold),
            },
        )

    def __repr__(self) -> str:
        return f"<EchoServer {self.name} {self.address} {'up' if self.running else 'down'}>"


class Harness:
    """Servers, manual resolvers and channels of one test, all closed by ``close()``.

    ``close()`` also checks that every channel closed its subchannels and that the threads started
    since the harness was made (ours, grpc's and the servers') are gone within ``LEAK_GRACE``
    seconds; AssertionError lists every problem.
    """

    def __init__(self) -> None:
        self.servers: list[EchoServer] = []
        self.resolvers: list[ManualResolver] = []
        self.channels: list[Any] = []
        self._leaks = LeakCheck(threads=lambda thread: True)

    def start_servers(
        self,
        count: int,
        *,
        credentials: Any = None,
        services: Callable[[EchoServer, Any], None] | None = None,
    ) -> list[EchoServer]:
        """Start ``count`` servers named s0, s1, ...; ``services(server, grpc_server)`` adds more."""
        started = [
            EchoServer(f"s{len(self.servers) + i}", credentials=credentials, services=services)
            for i in range(count)
        ]
        self.servers.extend(started)  # before starting: close() stops whatever did start
        for server in started:
            server.start()
        return started

    def manual(self, initial: Iterable[EchoServer | str] = ()) -> tuple[ManualResolver, str]:
        """A published manual resolver holding ``initial``, and the target that reaches it."""
        name = f"channel-test-{uuid.uuid4().hex[:12]}"
        addresses = [s.address if isinstance(s, EchoServer) else s for s in initial]
        resolver = ManualResolver(addresses, name=name)
        self.resolvers.append(resolver)
        return resolver, f"manual:///{name}"

    def dial(
        self, target: str, *, options: Sequence[tuple[str, Any]] = FAST_RECONNECT, **kwargs: Any
    ) -> naming.BalancedChannel:
        """``naming.dial`` with quick reconnects; the channel is closed and checked by ``close()``."""
        channel = naming.dial(target, options=options, **kwargs)
        self.adopt(channel)
        return channel

    def adopt(self, channel: Any) -> Any:
        """Close ``channel`` (built by the test itself) at the end too, and check its subchannels."""
        self.channels.append(channel)
        return self._leaks.track(channel)

    def close(self) -> None:
        problems = []
        for item in [*self.channels, *self.resolvers]:
            try:
                item.close()
            except Exception as exc:
                problems.append(f"closing {item!r}: {exc!r}")
        for server in self.servers:
            server.stop()
        try:
            self._leaks.check()
        except AssertionError as exc:
            problems.append(str(exc))
        assert not problems, problems

    def __enter__(self) -> Harness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def call_port(channel: Any, **kwargs: Any) -> str:
    """One PORT call: the name of the server that answered."""
    kwargs.setdefault("timeout", _wait.DEFAULT_TIMEOUT)
    return bytes(channel.unary_unary(PORT)(b"", **kwargs)).decode()


def wait_for_server(channel: Any, name: str, **kwargs: Any) -> None:
    """Make fail-fast PORT calls (10 ms apart, errors ignored) until ``name`` answers one."""

    def answered() -> bool:
        try:
            return call_port(channel, **kwargs) == name
        except grpc.RpcError:
            return False

    wait_until(answered, interval=0.01, what=f"server {name} to answer")


def wait_for_state(channel: Any, address: str, state: Any) -> None:
    """Wait until the channel's subchannel for ``address`` is in connectivity ``state``."""

    def reached() -> bool:
        subchannel = channel.subchannels().get(Address(address))
        return subchannel is not None and subchannel.state is state

    wait_until(reached, interval=0.01, what=f"{address} to be {state.name}")
