"""Picking: how a call of a balanced channel asks the balancer for an address and gets a subchannel.

Shared by the sync channel (:class:`naming.channel._channel.BalancedChannel`) and the asyncio one
(:class:`naming.channel.aio._channel.BalancedChannel`): the sync calls pick blocking where they
must wait, the asyncio ones pick with ``block=False`` and await the channel's wake-up instead.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from balancers import Balancer, PickInfo, Put
from naming.core import Address

from ._attempt import abandon
from ._errors import closed_error
from ._policy import PICK_ERRORS, CallPolicy, resync_wait
from ._subchannel import BaseSubchannel
from ._subchannels import Subchannels

__all__ = ["Picking", "get_function"]

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


class Picking:
    """The pick of a balanced channel, for the channel classes to inherit.

    They set ``target``, ``_balancer``, ``_get`` (:func:`get_function` of it), ``_subchannels``
    (:class:`naming.channel._subchannels.Subchannels`) and ``_closed``.
    """

    target: str
    _balancer: Balancer
    _get: Get
    _subchannels: Subchannels
    _closed: bool
    _logged_balancer_failure = False

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
