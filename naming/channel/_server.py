"""register_server(): publish a running gRPC server and take it down in the right order.

The order matters: on SIGTERM or SIGINT the record is removed first, so that clients stop picking
the server, and only then does the server stop, finishing its in-flight calls within ``grace``.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

from naming.core import Address, Registration, Target, register

__all__ = ["ServerRegistration", "register_server"]

log = logging.getLogger(__name__)

DRAIN = 0.5  # seconds a deregistered server serves on before it stops

_Handler = Any  # what signal.getsignal returns


class _Stopped:
    """What ``stop()`` returns: set once the server has stopped (``wait``/``is_set``, as an Event).

    It exists before the server is told to stop, so that a second ``stop()`` (a second signal, or
    another thread) returns at once instead of waiting for the first to finish deregistering.
    """

    def __init__(self) -> None:
        self._handed = threading.Event()
        self._server_event: Any = None

    def hand(self, server_event: Any) -> None:
        self._server_event = server_event
        self._handed.set()

    def is_set(self) -> bool:
        return self._handed.is_set() and bool(self._server_event.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._handed.wait(timeout):
            return False
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        return bool(self._server_event.wait(remaining))


class ServerRegistration:
    """A started gRPC server and its registration; ``stop()`` deregisters, then stops the server."""

    registration: Registration

    def __init__(
        self, server: Any, grace: float, target: str = "", addr: str = "", drain: float = 0.0
    ) -> None:
        self.server = server
        self.grace = grace
        self.drain = drain
        self.target = target
        self.addr = addr
        self._lock = threading.Lock()  # guards _stopped only: nothing slow runs under it
        self._stopped: _Stopped | None = None
        self._previous: dict[int, _Handler] = {}

    def stop(self, grace: float | None = None) -> _Stopped:
        """Deregister, then stop the server with ``grace`` seconds for in-flight calls.

        Returns an event-like object (``wait(timeout)``, ``is_set()``) set once the server has
        stopped. Idempotent and safe to call again while the first call is still deregistering
        (a second signal does that): later calls return the same object at once.
        """
        with self._lock:
            if self._stopped is not None:
                return self._stopped
            stopped = self._stopped = _Stopped()
        try:
            registration = getattr(self, "registration", None)
            if registration is not None:
                registration.close()
                # Serve on while the clients learn that the record is gone: a gRPC server that
                # stops cancels the calls it received and had not started, whatever the grace,
                # and calls sent before a client saw the deletion arrive meanwhile.
                time.sleep(self.drain)
        except Exception:
            log.exception("register_server: deregistering %s failed; stopping anyway", self.addr)
        finally:
            stopped.hand(self.server.stop(self.grace if grace is None else grace))
            self._restore_signals()
        return stopped

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped; False if ``timeout`` passed first."""
        return not self.server.wait_for_termination(timeout)  # grpc returns True on timeout

    def __enter__(self) -> ServerRegistration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop().wait()

    def __repr__(self) -> str:
        stopped = self._stopped
        state = "serving" if stopped is None else "stopped" if stopped.is_set() else "stopping"
        registration = getattr(self, "registration", None)
        addr = self.addr if registration is None else registration.address.addr
        return f"<ServerRegistration {addr} as {self.target} {state}>"

    def _attach(self, registration: Registration) -> None:
        with self._lock:
            self.registration = registration
            stopped = self._stopped is not None
        if stopped:  # a signal came while registering: the server is going, so is the record
            registration.close()

    def _install_signals(self, signals: Iterable[int]) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("register_server: not in the main thread; signal handlers not installed")
            return
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: deregistering, then stopping the server", signal.Signals(signum).name)
        self.stop()


def register_server(
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
    """Register ``addr`` for a started ``grpc.Server`` and stop both in order on a signal.

    Call it after ``server.start()``: the server is serving, so clients that see the record can
    use it at once. On any of ``signals`` (pass ``()`` for none; handlers are installed only from the
    main thread) the record is removed, then the server stops with ``grace``; the program's
    ``server.wait_for_termination()`` then returns. A second signal gets the previous handler back.

    Between the two the server serves on for ``drain`` seconds (0.5 by default), so that the
    clients that were about to send it a call learn that its record is gone first; a registry
    whose clients learn late (DNS, Consul's blocking queries) wants a longer one. ValueError for
    a ``drain`` that is not a finite number of seconds >= 0.
    """
    if isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 <= drain < math.inf:
        raise ValueError(
            f"register_server: drain must be a finite number of seconds >= 0, got {drain!r}"
        )
    name = str(target)
    serving = ServerRegistration(
        server, grace, name, addr.addr if isinstance(addr, Address) else addr, float(drain)
    )
    serving._install_signals(signals)  # first: a signal during registering still deregisters
    try:
        serving._attach(register(target, addr, metadata, ttl=ttl, **options))
    except BaseException:
        serving._restore_signals()
        raise
    return serving
