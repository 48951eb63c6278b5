"""BalancedChannel: a ``grpc.Channel`` that asks a balancer for an address on every call.

grpcio cannot host a balancer written in Python, so this channel does what grpc-go's legacy
``ClientConn`` did around a v1 ``Balancer``: a thread (``naming-channel-N``) reads the balancer's
``notify()`` stream (its changes, when it offers them) and keeps one pick_first subchannel per
address (:mod:`naming.channel._subchannels`), whose connectivity the same thread polls
(:mod:`naming.channel._poller`); each call asks ``balancer.get()`` for an address
(:meth:`BalancedChannel.pick`), runs grpc's own multicallable on that address's subchannel with
what is left of its deadline, and reports the outcome to ``put``, as the call policy decides
(:mod:`naming.channel._policy`). The calls live in :mod:`naming.channel._calls`.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc

from balancers import Balancer, Notifications, PickInfo, Put
from naming.core import Address, BalancerClosedError, Closeable, DeadlineExceededError, Resolver

from ._attempt import abandon
from ._calls import StreamStream, StreamUnary, UnaryStream, UnaryUnary
from ._errors import CallError, closed_error
from ._policy import PICK_ERRORS, CallPolicy, idempotent_methods, resync_wait, within
from ._subchannel import Subchannel
from ._subchannels import Subchannels

__all__ = ["BalancedChannel", "CallError"]

log = logging.getLogger(__name__)

Code = grpc.StatusCode

DRAIN_GRACE = 5.0  # seconds the calls of a removed address may still run before it is closed
_JOIN_TIMEOUT = 5.0
_ids = itertools.count(1)

Get = Callable[..., tuple[Address, Put | None]]


def _get_function(balancer: Balancer) -> Get:
    """``balancer.get``, or for a balancer written before ``get()`` took the call's ``info``, a
    function that drops it: balancers of that shape keep working."""
    get = balancer.get
    try:
        inspect.signature(get).bind(blocking_wait=False, timeout=None, info=None)
    except TypeError:
        log.debug("channel: %r.get() takes no info; the channel does not pass it", balancer)

        def legacy(*, blocking_wait: bool, timeout: float | None, info: PickInfo) -> Any:
            return get(blocking_wait=blocking_wait, timeout=timeout)

        return legacy
    except ValueError:  # no signature to read (a builtin): trust the documented shape
        pass
    return get


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
        self._get = _get_function(balancer)
        self._resolver = resolver
        self._closed = False
        self._closed_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._close_lock = threading.Lock()
        self._logged_balancer_failure = False
        self._subchannels = Subchannels(
            balancer,
            credentials=credentials,
            options=options,
            drain_grace=drain_grace,
            name=target,
            on_failure=getattr(resolver, "resolve_now", None),
        )
        notifications = balancer.notify()
        if notifications is None:  # no resolver: connect to the target itself (legacy)
            self._subchannels.update([Address(target)])
        self._thread = threading.Thread(
            target=self._follow,
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

    def wait_for_subchannels(
        self,
        predicate: Callable[[Mapping[Address, Subchannel]], bool],
        timeout: float | None = None,
    ) -> bool:
        """Wait until ``predicate(subchannels by address)`` holds; False if ``timeout`` passed.

        ``predicate`` is tested now and after each address-list update the channel applies, with
        a live read-only mapping (no copy, whatever the number of addresses), under the lock that
        updates take: it must be quick and must not call the channel. For tests, benchmarks and
        diagnostics: ``channel.wait_for_subchannels(lambda subs: address in subs, 10)``.
        """
        return self._subchannels.wait_until(predicate, timeout)

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

        Closes the balancer (which wakes waiting calls), the resolver, the channel's thread and
        every subchannel, in that order. Blocks until that is done (a few seconds at most).
        Idempotent. A call made afterwards raises ValueError, as on a closed grpc channel.
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
                log.warning("channel: the thread of %s did not stop", self.target)
        self._subchannels.close()

    def __repr__(self) -> str:
        state = self._subchannels.connectivity.state.name
        return f"<BalancedChannel {self.target!r} {self._balancer.name or 'balancer'} {state}>"

    # -- the channel's thread -------------------------------------------------------------------

    def _follow(self, notifications: Notifications | None) -> None:
        """Apply the balancer's address lists (its changes when offered) and tick the
        subchannels (connectivity polls, draining), until the channel or the balancer closes."""
        subchannels = self._subchannels
        changes = getattr(notifications, "changes", None)
        while not self._closed:
            timeout = subchannels.interval()
            news: Any = None
            try:
                if notifications is None:
                    self._closed_event.wait(timeout)
                elif changes is not None:
                    news = changes(timeout)
                else:
                    news = notifications.get(timeout)
            except DeadlineExceededError:
                pass
            except BalancerClosedError:
                return
            except Exception:
                log.exception("channel: reading the address lists of %s failed", self.target)
                return
            try:
                if isinstance(news, list):
                    subchannels.update(news)
                elif news is not None and news.full is not None:
                    subchannels.update(news.full)
                elif news is not None:
                    subchannels.apply(news.added, news.removed)
                subchannels.tick()
            except Exception:
                log.exception("channel: updating the subchannels of %s failed", self.target)

    # -- picking ------------------------------------------------------------------------------

    def pick(
        self,
        policy: CallPolicy,
        info: PickInfo,
        wait: bool,
        deadline: float | None,
        block: bool = True,
        timeout: float | None = None,
    ) -> tuple[Subchannel, Put | None] | None:
        """The subchannel for one call, counted in (the caller must ``release()`` it), and ``put``.

        Asks ``balancer.get(blocking_wait=wait, timeout=<what is left>, info=info)``. A picked
        address with no subchannel (the balancer is ahead of the list) is abandoned (no call ran
        there) and, as ``policy`` decides, picked again once the list catches up. Raises the
        CallError ``policy`` gives up with (INTERNAL when ``get()`` itself fails); with
        ``block=False``, returns None where it would wait. ``timeout`` is the call's own, for
        the details of a deadline.
        """
        picks = 0
        while True:
            if self._closed:
                raise closed_error()
            if not block:
                left: float | None = 0.0
            else:  # what is left (0 or less once it has passed); inline: every call comes here
                left = None if deadline is None else deadline - time.monotonic()
            try:
                address, put = self._get(blocking_wait=wait, timeout=left, info=info)
            except PICK_ERRORS as exc:
                last = getattr(self._balancer, "resolver_error", None)
                error = policy.pick_failed(exc, block, self.target, last, timeout)
                if error is None:
                    return None
                raise error from None
            except Exception as exc:  # a bug in the balancer or its picker
                self._log_balancer_failure(exc)
                raise policy.balancer_failed(exc, self.target) from exc
            subchannel = self._subchannels.current.get(address)  # every call: no method call
            if subchannel is not None and subchannel.acquire():
                return subchannel, put
            abandon(put)
            picks += 1
            error = policy.unusable(address, wait, picks)
            if error is not None:
                raise error
            if not block:
                return None
            self._subchannels.wait_for(address, resync_wait(deadline))

    def _log_balancer_failure(self, error: Exception) -> None:
        """The first failure of ``get()`` with its traceback (ERROR), the others at DEBUG."""
        first, self._logged_balancer_failure = not self._logged_balancer_failure, True
        log.log(
            logging.ERROR if first else logging.DEBUG,
            "channel: %s: the balancer's get() raised; the call fails with INTERNAL%s",
            self.target,
            "" if first else " (again)",
            exc_info=error,
        )

    def pause(self, seconds: float, deadline: float | None) -> None:
        """Sleep ``seconds`` (never past ``deadline``); wake early when the channel closes."""
        seconds = within(seconds, deadline)
        if seconds > 0:
            self._closed_event.wait(seconds)
