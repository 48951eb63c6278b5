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

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc

from balancers import Balancer, Notifications
from naming.core import Address, BalancerClosedError, Closeable, DeadlineExceededError, Resolver

from ._base import ChannelBase
from ._calls import KINDS
from ._errors import CallError
from ._policy import within
from ._subchannel import BaseSubchannel

__all__ = ["BalancedChannel", "CallError"]

log = logging.getLogger(__name__)

Code = grpc.StatusCode

DRAIN_GRACE = 5.0  # seconds the calls of a removed address may still run before it is closed
_JOIN_TIMEOUT = 5.0
_ids = itertools.count(1)


class BalancedChannel(ChannelBase, Closeable, grpc.Channel):  # type: ignore[misc]  # grpc is untyped
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

    _kinds = KINDS

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
        self._closed_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._close_lock = threading.Lock()
        notifications = self._share(
            target, balancer, resolver, idempotent, credentials, options, drain_grace
        )
        self._thread = threading.Thread(
            target=self._follow,
            args=(notifications,),
            name=f"naming-channel-{next(_ids)}",
            daemon=True,
        )
        self._thread.start()

    def wait_for_subchannels(
        self,
        predicate: Callable[[Mapping[Address, BaseSubchannel]], bool],
        timeout: float | None = None,
    ) -> bool:
        """Wait until ``predicate(subchannels by address)`` holds; False if ``timeout`` passed.

        ``predicate`` is tested now and after each address-list update the channel applies, with
        a live read-only mapping (no copy, whatever the number of addresses), under the lock that
        updates take: it must be quick and must not call the channel. For tests, benchmarks and
        diagnostics: ``channel.wait_for_subchannels(lambda subs: address in subs, 10)``.
        """
        return self._subchannels.wait_until(predicate, timeout)

    def connectivity(self) -> Any:
        """The aggregate ``grpc.ChannelConnectivity`` now."""
        return self._subchannels.connectivity.state

    # -- grpc.Channel ---------------------------------------------------------------------------

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

    def pause(self, seconds: float, deadline: float | None) -> None:
        """Sleep ``seconds`` (never past ``deadline``); wake early when the channel closes."""
        seconds = within(seconds, deadline)
        if seconds > 0:
            self._closed_event.wait(seconds)
