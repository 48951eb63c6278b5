"""ChannelBase: what the sync and the asyncio balanced channels share.

The sync channel (:class:`naming.channel._channel.BalancedChannel`) and the asyncio one
(:class:`naming.channel.aio._channel.BalancedChannel`) keep the same state over a balancer (its
``get``, the set of subchannels, the idempotent methods) and make a call's pick the same way: the
sync calls pick blocking where they must wait, the asyncio ones pick with ``block=False`` and await
the channel's wake-up instead.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from balancers import Balancer, Notifications, PickInfo, Put
from naming.core import Address, Resolver

from ._attempt import abandon
from ._errors import closed_error
from ._policy import PICK_ERRORS, CallPolicy, idempotent_methods, resync_wait
from ._subchannel import BaseSubchannel, Subchannel
from ._subchannels import Subchannels

__all__ = ["ChannelBase", "get_function"]

log = logging.getLogger("naming.channel._channel")  # one logger for what a channel says of picks

Get = Callable[..., tuple[Address, Put | None]]


def get_function(balancer: Balancer) -> Get:
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


class ChannelBase:
    """The state, the multicallables and the pick of a balanced channel, for the channel classes
    to inherit (first among their bases, so that its methods are grpc's abstract ones); they call
    :meth:`_share` first in their constructor and set ``_kinds``, their multicallable classes."""

    _kinds: ClassVar[dict[str, Callable[[Any, tuple[Any, ...]], Any]]]
    _logged_balancer_failure = False

    def _share(
        self,
        target: str,
        balancer: Balancer,
        resolver: Resolver | None,
        idempotent: Iterable[str],
        credentials: Any,
        options: Sequence[tuple[str, Any]],
        drain_grace: float,
        factory: Callable[..., BaseSubchannel] = Subchannel,
    ) -> Notifications | None:
        """Take ``balancer`` (and ``resolver``), make the set of subchannels; the balancer's
        notifications (None: no resolver, and the target itself is the one address)."""
        self._idempotent_methods, self._idempotent_services = idempotent_methods(idempotent)
        self.target = target
        self._balancer = balancer
        self._get = get_function(balancer)
        self._resolver = resolver
        self._closed = False
        self._subchannels = Subchannels(
            balancer,
            credentials=credentials,
            options=options,
            drain_grace=drain_grace,
            name=target,
            on_failure=getattr(resolver, "resolve_now", None),
            factory=factory,
        )
        notifications = balancer.notify()
        if notifications is None:  # no resolver: connect to the target itself (legacy)
            self._subchannels.update([Address(target)])
        return notifications

    @property
    def balancer(self) -> Balancer:
        return self._balancer

    @property
    def closed(self) -> bool:
        return self._closed

    def subchannels(self) -> dict[Address, BaseSubchannel]:
        """The current subchannels by address (a copy; for tests and diagnostics)."""
        return self._subchannels.snapshot()

    def is_idempotent(self, method: str) -> bool:
        """True if calls to ``method`` (``/service/method``) were declared safe to run again."""
        if method in self._idempotent_methods:
            return True
        service, _, _ = method[1:].rpartition("/")
        return service in self._idempotent_services

    # -- the multicallables of grpc.Channel and grpc.aio.Channel, as ``_kinds`` says -----------

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        spec = ("unary_unary", method, request_serializer, response_deserializer)
        return self._kinds["unary_unary"](self, (*spec, _registered_method))

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        spec = ("unary_stream", method, request_serializer, response_deserializer)
        return self._kinds["unary_stream"](self, (*spec, _registered_method))

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        spec = ("stream_unary", method, request_serializer, response_deserializer)
        return self._kinds["stream_unary"](self, (*spec, _registered_method))

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        spec = ("stream_stream", method, request_serializer, response_deserializer)
        return self._kinds["stream_stream"](self, (*spec, _registered_method))

    def pick(
        self,
        policy: CallPolicy,
        info: PickInfo,
        wait: bool,
        deadline: float | None,
        block: bool = True,
        timeout: float | None = None,
        picks: int = 0,
    ) -> tuple[BaseSubchannel, Put | None] | None:
        """The subchannel for one call, counted in (the caller must ``release()`` it), and ``put``.

        Asks ``balancer.get(blocking_wait=wait, timeout=<what is left>, info=info)``. A picked
        address with no subchannel (the balancer is ahead of the list) is abandoned (no call ran
        there) and, as ``policy`` decides, picked again once the list catches up. Raises the
        CallError ``policy`` gives up with (INTERNAL when ``get()`` itself fails); with
        ``block=False``, returns None where it would wait. ``timeout`` is the call's own, for
        the details of a deadline; ``picks`` counts the unusable picks this call made before.
        """
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
