"""register_server(): publish a running gRPC server and take it down in the right order.

The order matters: on SIGTERM or SIGINT the record is removed first, so that clients stop picking
the server, and only then does the server stop, finishing its in-flight calls within ``grace``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

from naming.core import Address, Registration, Target, register

__all__ = ["ServerRegistration", "register_server"]

log = logging.getLogger(__name__)

_Handler = Any  # what signal.getsignal returns


class ServerRegistration:
    """A started gRPC server and its registration; ``stop()`` deregisters, then stops the server."""

    registration: Registration

    def __init__(self, server: Any, grace: float) -> None:
        self.server = server
        self.grace = grace
        self._lock = threading.Lock()
        self._stopped: threading.Event | None = None
        self._previous: dict[int, _Handler] = {}

    def stop(self, grace: float | None = None) -> threading.Event:
        """Deregister, then stop the server with ``grace`` seconds for in-flight calls.

        Returns the event the server sets once it has stopped. Idempotent: later calls return the
        same event.
        """
        with self._lock:
            if self._stopped is not None:
                return self._stopped
            if hasattr(self, "registration"):
                self.registration.close()
            self._stopped = self.server.stop(self.grace if grace is None else grace)
            self._restore_signals()
            return self._stopped

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped; False if ``timeout`` passed first."""
        return not self.server.wait_for_termination(timeout)  # grpc returns True on timeout

    def __enter__(self) -> ServerRegistration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop().wait()

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
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    **options: Any,
) -> ServerRegistration:
    """Register ``addr`` for a started ``grpc.Server`` and stop both in order on a signal.

    Call it after ``server.start()``: the server is serving, so clients that see the record can
    use it at once. On any of ``signals`` (pass ``()`` for none; handlers are installed only from the
    main thread) the record is removed, then the server stops with ``grace``; the program's
    ``server.wait_for_termination()`` then returns. A second signal gets the previous handler back.
    """
    serving = ServerRegistration(server, grace)
    serving._install_signals(signals)  # first: a signal during registering still deregisters
    try:
        serving._attach(register(target, addr, metadata, ttl=ttl, **options))
    except BaseException:
        serving._restore_signals()
        raise
    return serving
