"""BalancedChannel: a ``grpc.Channel`` that asks a balancer for an address on every call.

grpcio cannot host a balancer written in Python, so this channel does what grpc-go's legacy
``ClientConn`` did around a v1 ``Balancer``: a thread (``naming-channel-N``) reads the balancer's
``notify()`` lists and keeps one pick_first subchannel per address (:mod:`naming.channel._subchannels`); each
call asks ``balancer.get()`` for an address, runs grpc's own multicallable on that address's
subchannel with what is left of its deadline, and reports the outcome to ``put``. The calls and
``CallError`` live in :mod:`naming.channel._calls`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc

from balancers import Balancer, Notifications, Put
from naming.core import (
    Address,
    BalancerClosedError,
    Closeable,
    DeadlineExceededError,
    NoAddressAvailableError,
    Resolver,
)

from ._calls import (
    CallError,
    StreamStream,
    StreamUnary,
    UnaryStream,
    UnaryUnary,
    closed_error,
    idempotent_methods,
    report,
)
from ._subchannel import Subchannel
from ._subchannels import Subchannels

__all__ = ["BalancedChannel", "CallError"]

log = logging.getLogger(__name__)

Code = grpc.StatusCode

DRAIN_GRACE = 5.0  # seconds the calls of a removed address may still run before it is closed
_RESYNC_WAIT = 0.1  # how long a pick waits for the subchannels to catch up with the balancer
_FAIL_FAST_PICKS = 3  # picks a fail-fast call makes before a missing subchannel fails it
_JOIN_TIMEOUT = 5.0
_ids = itertools.count(1)


class BalancedChannel(Closeable, grpc.Channel):  # type: ignore[misc]  # grpc is untyped
    """A ``grpc.Channel`` over a started balancer; built by :func:`naming.dial`.

    The channel owns ``balancer`` (and ``resolver``, if given) and closes them in ``close()``.
    ``credentials`` and ``options`` apply to every subchannel. ``idempotent`` names the methods
    (``/service/method``) and services (``/service/*``) whose unary-unary calls may run more than
    once: they are picked again after an UNAVAILABLE failure (docs/channel.md, "Idempotent
    methods"); ValueError for an entry of another form. Every method is thread-safe.

    Connectivity (``subscribe``): IDLE until the first address list arrives, then READY if any
    subchannel is ready, else CONNECTING if any is connecting, else TRANSIENT_FAILURE; SHUTDOWN
    after ``close()``. Callbacks run in order on an internal or grpc thread and must not block.
    """

    def __init__(
        self,
        target: str,
        balancer: Balancer,
        *,
        resolver: Resolver | None = None,
        credentials: Any = None,
        options: Sequence[tuple[str, Any]] = (),
        drain_grace: float = DRAIN_GRACE,
        idempotent: Iterable[str] = (),
    ) -> None:
        self._idempotent_methods, self._idempotent_services = idempotent_methods(idempotent)
        self.target = target
        self._balancer = balancer
        self._resolver = resolver
        self._closed = False
        self._closed_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._close_lock = threading.Lock()
        self._subchannels = Subchannels(
            balancer, credentials=credentials, options=options, drain_grace=drain_grace
        )
        notifications = balancer.notify()
        if notifications is None:  # no resolver: connect to the target itself (legacy)
            self._subchannels.update([Address(target)])
            return
        self._thread = threading.Thread(
            target=self._watch,
            args=(notifications,),
            name=f"naming-channel-{next(_ids)}",
            daemon=True,
        )
        self._thread.start()

    @property
    def balancer(self) -> Balancer:
        return self._balancer

    @property
    def closed(self) -> bool:
        return self._closed

    def subchannels(self) -> dict[Address, Subchannel]:
        """The current subchannels by address (a copy; for tests and diagnostics)."""
        return self._subchannels.snapshot()

    def is_idempotent(self, method: str) -> bool:
        """True if calls to ``method`` (``/service/method``) were declared safe to run again."""
        if method in self._idempotent_methods:
            return True
        service, _, _ = method[1:].rpartition("/")
        return service in self._idempotent_services

    def connectivity(self) -> Any:
        """The aggregate ``grpc.ChannelConnectivity`` now."""
        return self._subchannels.connectivity.state

    # -- grpc.Channel ---------------------------------------------------------------------------

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> UnaryUnary:
        spec = (
            "unary_unary",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )
        return UnaryUnary(self, spec)

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> UnaryStream:
        spec = (
            "unary_stream",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )
        return UnaryStream(self, spec)

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> StreamUnary:
        spec = (
            "stream_unary",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )
        return StreamUnary(self, spec)

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> StreamStream:
        spec = (
            "stream_stream",
            method,
            request_serializer,
            response_deserializer,
            _registered_method,
        )
        return StreamStream(self, spec)

    def subscribe(self, callback: Callable[[Any], None], try_to_connect: bool = False) -> None:
        """Call ``callback(state)`` now and on every change of the aggregate connectivity.

        ``try_to_connect`` is accepted for grpc compatibility: this channel always connects.
        """
        self._subchannels.connectivity.subscribe(callback)

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        self._subchannels.connectivity.unsubscribe(callback)

    def close(self) -> None:
        """Close the channel; calls waiting for an address and calls in flight end with CANCELLED.

        Closes the balancer (which wakes waiting calls), the resolver, the notify thread and every
        subchannel, in that order. Blocks until that is done (a few seconds at most). Idempotent.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._closed_event.set()
        try:
            self._balancer.close()
        except BalancerClosedError:
            pass
        except Exception:
            log.exception("channel: closing the balancer of %s failed", self.target)
        if self._resolver is not None:
            try:
                self._resolver.close()
            except Exception:
                log.exception("channel: closing the resolver of %s failed", self.target)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.warning("channel: the notify thread of %s did not stop", self.target)
        self._subchannels.close()

    def __repr__(self) -> str:
        state = self._subchannels.connectivity.state.name
        return f"<BalancedChannel {self.target!r} {self._balancer.name or 'balancer'} {state}>"

    # -- the notify thread --------------------------------------------------------------------

    def _watch(self, notifications: Notifications) -> None:
        while True:
            try:
                addresses = notifications.get(self._subchannels.interval())
            except DeadlineExceededError:
                addresses = None
            except BalancerClosedError:
                return
            except Exception:
                log.exception("channel: reading the address lists of %s failed", self.target)
                return
            try:
                if addresses is not None:
                    self._subchannels.update(addresses)
                self._subchannels.tick()
            except Exception:
                log.exception("channel: updating the subchannels of %s failed", self.target)

    # -- picking ------------------------------------------------------------------------------

    def pick(
        self, wait_for_ready: bool, deadline: float | None, *, block: bool = True
    ) -> tuple[Subchannel, Put | None] | None:
        """The subchannel for one call, counted in (the caller must ``release()`` it), and ``put``.

        Raises CallError: UNAVAILABLE (no address; or fail-fast and no subchannel for the one
        picked), DEADLINE_EXCEEDED (``deadline`` passed while waiting), CANCELLED (closed channel).
        With ``block=False`` it returns None where it would wait.
        """
        picks = 0
        while True:
            if self._closed:
                raise closed_error()
            if not block:
                timeout: float | None = 0.0
            elif deadline is None:
                timeout = None
            else:
                timeout = deadline - time.monotonic()
            try:
                address, put = self._balancer.get(blocking_wait=wait_for_ready, timeout=timeout)
            except NoAddressAvailableError as exc:
                raise CallError(Code.UNAVAILABLE, str(exc)) from None
            except DeadlineExceededError as exc:
                if not block:
                    return None
                raise CallError(Code.DEADLINE_EXCEEDED, str(exc)) from None
            except BalancerClosedError:
                raise closed_error() from None
            subchannel = self._subchannels.current.get(address)  # every call: no method call
            if subchannel is not None and subchannel.acquire():
                return subchannel, put
            # The balancer is ahead of the subchannels: an address was just added or removed.
            error = CallError(Code.UNAVAILABLE, f"channel: no connection to {address.addr}")
            report(put, error.code(), 0.0, error)
            picks += 1
            if not wait_for_ready and picks >= _FAIL_FAST_PICKS:
                raise error
            if not block:
                return None
            wait = (
                _RESYNC_WAIT if deadline is None else min(_RESYNC_WAIT, deadline - time.monotonic())
            )
            self._subchannels.wait_for(address, wait)

    def pause(self, seconds: float, deadline: float | None) -> None:
        """Sleep ``seconds`` (never past ``deadline``); wake early when the channel closes."""
        if deadline is not None:
            seconds = min(seconds, deadline - time.monotonic())
        if seconds > 0:
            self._closed_event.wait(seconds)
