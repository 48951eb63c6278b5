"""naming.aio.register_server(): publish a running ``grpc.aio`` server, take it down in order.

The order is the sync ``register_server``'s: on SIGTERM or SIGINT (or ``await stop()``) the record
is removed first, so that clients stop picking the server, and only then does the server stop,
finishing its in-flight calls within ``grace``. The registry's client is sync, so registering and
deregistering run in the loop's default executor: the loop never waits on the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import signal
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from naming.core import Address, Registration, Target, register

from .._server import DRAIN

__all__ = ["ServerRegistration", "register_server"]

log = logging.getLogger(__name__)


class ServerRegistration:
    """A started ``grpc.aio`` server and its record; ``await stop()`` deregisters, then stops it.

    ``await wait(timeout)`` returns True once the server has stopped (False if ``timeout`` passed
    first); ``await wait_for_termination(timeout)`` is the server's own, True on a timeout. It
    is an async context manager that stops on exit. Use it from the loop that registered it.
    """

    def __init__(
        self, server: Any, grace: float, target: str, addr: str, drain: float = 0.0
    ) -> None:
        self.server = server
        self.grace = grace
        self.drain = drain
        self.target = target
        self.addr = addr
        self._loop = asyncio.get_running_loop()
        # the record, or None if registering failed: set by register_server()
        self._registering: asyncio.Future[Registration | None] = self._loop.create_future()
        self._stopping: asyncio.Future[None] | None = None
        self._previous: dict[int, Any] = {}  # signal number -> the Python handler it had

    @property
    def registration(self) -> Registration | None:
        """The backend's record once registered (None while registering, or if that failed)."""
        return self._registering.result() if self._registering.done() else None

    async def stop(self, grace: float | None = None) -> None:
        """Deregister, then ``await server.stop(grace)`` (the registration's ``grace`` by default).

        Idempotent: a second call, while the first runs or after, waits for the same outcome (the
        first call's ``grace`` counts). Cancelling the caller does not cancel the stop.
        """
        if grace is not None:
            _check_grace(grace)
        await asyncio.shield(self._begin_stop(grace))

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the server has stopped (and ``stop()``, if begun, has ended); False if
        ``timeout`` seconds passed first."""
        deadline = None if timeout is None else self._loop.time() + timeout
        if await self.server.wait_for_termination(timeout):
            return False
        if self._stopping is not None:
            remaining = None if deadline is None else max(deadline - self._loop.time(), 0.0)
            await asyncio.wait({self._stopping}, timeout=remaining)
            return self._stopping.done()
        return True

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        """The server's ``wait_for_termination``: True if ``timeout`` passed before it stopped."""
        return bool(await self.server.wait_for_termination(timeout))

    async def __aenter__(self) -> ServerRegistration:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        stopping = self._stopping
        state = "serving" if stopping is None else "stopped" if stopping.done() else "stopping"
        registration = self.registration
        addr = self.addr if registration is None else registration.address.addr
        return f"<ServerRegistration {addr} as {self.target} {state}>"

    def _begin_stop(self, grace: float | None) -> asyncio.Future[None]:
        if self._stopping is None:
            self._stopping = self._loop.create_task(
                self._stop(self.grace if grace is None else grace)
            )
        return self._stopping

    async def _stop(self, grace: float) -> None:
        self._remove_signals()  # first: a second signal gets the program's own handler
        registration = await self._registering  # a signal may come while registering
        if registration is not None:
            try:
                await self._loop.run_in_executor(None, registration.close)
            except Exception:
                log.exception(
                    "aio: register_server: deregistering %s failed; stopping anyway", self.addr
                )
            else:
                # Serve on while the clients learn that the record is gone: a grpc.aio server
                # that stops cancels the calls it received and had not started, whatever the
                # grace, and calls sent before a client saw the deletion arrive meanwhile.
                await asyncio.sleep(self.drain)
        await self.server.stop(grace)

    def _install_signals(self, signals: list[int]) -> None:
        if signals and threading.current_thread() is not threading.main_thread():
            log.warning(
                "aio: register_server: not in the main thread; signal handlers not installed"
            )
            return
        try:
            for signum in signals:
                previous = signal.getsignal(signum)
                self._loop.add_signal_handler(signum, self._on_signal, signum)
                self._previous[signum] = previous
        except BaseException:  # all or none
            self._remove_signals()
            raise

    def _remove_signals(self) -> None:
        for signum, previous in self._previous.items():
            self._loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int) -> None:
        log.info("%s: deregistering, then stopping the server", signal.Signals(signum).name)
        self._begin_stop(None)


async def register_server(
    server: Any,
    target: Target | str,
    addr: Address | str,
    metadata: Mapping[str, Any] | None = None,
    *,
    ttl: float = 10.0,
    grace: float = 5.0,
    drain: float = DRAIN,
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    **options: Any,
) -> ServerRegistration:
    """Register ``addr`` for a started ``grpc.aio.Server``; stop both in order on a signal.

    Await it after ``await server.start()``. ``naming.register`` runs in the loop's executor, with
    the same checks and errors. On any of ``signals`` (``()`` for none; installed with
    ``loop.add_signal_handler``, so from the main thread's loop) the record is removed, then the
    server stops with ``grace``, and the program's ``await registration.wait()`` (or the server's
    ``wait_for_termination()``) returns. Stopping puts the previous signal handlers back.

    Between the two the server serves on for ``drain`` seconds (0.5 by default), so that the
    clients that were about to send it a call learn that its record is gone first; a registry
    whose clients learn late (DNS, Consul's blocking queries) wants a longer one.
    """
    _check_server(server)
    _check_grace(grace)
    _check_grace(drain, "drain")
    wanted = [_signal_number(signum) for signum in signals]
    loop = asyncio.get_running_loop()
    name = addr.addr if isinstance(addr, Address) else str(addr)
    serving = ServerRegistration(server, float(grace), str(target), name, float(drain))
    serving._install_signals(wanted)  # first: a signal while registering still deregisters
    registering: asyncio.Future[Registration] | None = None
    try:
        registering = loop.run_in_executor(
            None, functools.partial(register, target, addr, metadata, ttl=ttl, **options)
        )
        registration = await asyncio.shield(registering)
    except BaseException:  # a failed or cancelled register(): undo what its thread may still do
        serving._remove_signals()
        serving._registering.set_result(None)  # a stop begun meanwhile stops only the server
        with contextlib.suppress(Exception):
            if registering is not None:
                registration = await registering  # raises the register() error, now retrieved
                await loop.run_in_executor(None, registration.close)
        raise
    serving._registering.set_result(registration)
    return serving


def _check_server(server: Any) -> None:
    if not inspect.iscoroutinefunction(getattr(server, "stop", None)):
        raise TypeError(
            f"aio: register_server needs a started grpc.aio.Server, got {type(server).__name__} "
            "(for a grpc.Server use naming.register_server)"
        )


def _check_grace(grace: object, name: str = "grace") -> None:
    if isinstance(grace, bool) or not isinstance(grace, (int, float)):
        raise TypeError(f"aio: {name} must be a number of seconds, got {type(grace).__name__}")
    if not 0 <= grace < math.inf:  # NaN fails this too
        raise ValueError(f"aio: {name} must be a finite number of seconds >= 0, got {grace!r}")


def _signal_number(signum: object) -> int:
    if isinstance(signum, bool) or not isinstance(signum, int):
        raise TypeError(f"aio: signals must be signal numbers, got {signum!r}")
    try:
        number = signal.Signals(signum)
    except ValueError:
        raise ValueError(f"aio: {signum} is not a signal number") from None
    if number in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f"aio: {number.name} cannot be caught")
    return int(number)
