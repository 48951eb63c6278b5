"""AioEchoServer: the echo server of naming.testing.servers, as a ``grpc.aio`` server.

It answers the same raw-bytes methods of ``naming.test.Echo`` (``PORT``, ``PORTS``, ``COUNT``,
``ECHO``, ``FAIL``, ``HOLD``) with its own name, from coroutines on the test's event loop. Start,
stop and restart it from the loop that runs the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import grpc

from . import _wait
from .servers import SERVICE

__all__ = ["AioEchoServer"]


class AioEchoServer:
    """A ``grpc.aio`` server on 127.0.0.1 named ``name``: ``await start()``, ``stop()``, ``restart()``.

    ``calls`` counts the calls it handled; ``held`` counts HOLD calls waiting for ``release`` (an
    asyncio.Event; ``stop()`` sets it, so held calls end). ``services(self, grpc_server)`` adds
    other services (a generated servicer). The first ``start()`` takes a free port; later ones
    bind the same port again. It is an async context manager: started on entry, stopped on exit.
    """

    def __init__(
        self, name: str, *, services: Callable[[AioEchoServer, Any], None] | None = None
    ) -> None:
        self.name = name
        self.port = 0
        self.release = asyncio.Event()
        self.calls = 0
        self.held = 0
        self._services = services
        self._server: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def grpc_server(self) -> Any:
        """The running ``grpc.aio.Server`` (for ``naming.aio.register_server``); None when stopped."""
        return self._server

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> AioEchoServer:
        """Start serving; on the port it had before, if it ran before."""
        if self._server is not None:
            raise RuntimeError(f"testing: {self.name} is already running")
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((self._handler(),))
        if self._services is not None:
            self._services(self, server)
        bind = f"127.0.0.1:{self.port}"
        port = server.add_insecure_port(bind)
        if port == 0:
            raise RuntimeError(f"testing: {self.name} cannot bind {bind}")
        await server.start()
        self.port = port
        self._server = server
        return self

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving (``grace`` seconds for calls in flight) and wait until it has stopped."""
        server, self._server = self._server, None
        if server is None:
            return
        self.release.set()
        await asyncio.wait_for(server.stop(grace), _wait.DEFAULT_TIMEOUT)
        self.release.clear()

    async def restart(self) -> AioEchoServer:
        """Stop, then start again on the same port."""
        await self.stop()
        return await self.start()

    async def __aenter__(self) -> AioEchoServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _handler(self) -> Any:
        name = self.name.encode()

        async def port(request: bytes, context: Any) -> bytes:
            self.calls += 1
            return name

        async def ports(request: bytes, context: Any) -> AsyncIterator[bytes]:
            self.calls += 1
            for _ in range(int(request or b"1")):
                yield name

        async def count(requests: AsyncIterator[bytes], context: Any) -> bytes:
            self.calls += 1
            number = 0
            async for _ in requests:
                number += 1
            return name + b":" + str(number).encode()

        async def echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
            self.calls += 1
            async for request in requests:
                yield name + b":" + request

        async def fail(request: bytes, context: Any) -> bytes:
            self.calls += 1
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{self.name}: nothing here")
            raise AssertionError("unreachable")

        async def hold(request: bytes, context: Any) -> bytes:
            # A call the client cancels cancels this coroutine; the wait is bounded all the same.
            self.calls += 1
            self.held += 1
            try:
                await asyncio.wait_for(self.release.wait(), _wait.DEFAULT_TIMEOUT)
            except asyncio.TimeoutError:
                pass
            finally:
                self.held -= 1
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
        return f"<AioEchoServer {self.name} {self.address} {'up' if self.running else 'down'}>"
