"""BalancedChannel for asyncio: a ``grpc.aio.Channel`` that asks a balancer for an address on every call.

The sync channel's design (:mod:`naming.channel._channel`) on an event loop. The balancer, the call
policy, the pick (:class:`naming.channel._base.ChannelBase`) and the set of subchannels
(:class:`naming.channel._subchannels.Subchannels`) are the sync channel's own; what is async:

* each address has a ``grpc.aio`` channel whose connectivity a task follows
  (:class:`naming.channel.aio._subchannel.AioSubchannel`);
* one thread per channel (``naming-aio-channel-N``) reads the balancer's ``notify()`` stream, which
  blocks, and hands each address list to the loop with ``loop.call_soon_threadsafe``; the
  subchannels are changed on the loop only;
* a call that must wait for a ready address awaits a future that the next ``balancer.up()`` (or
  address list, or ``close()``) resolves: no thread per waiting call;
* a task per channel ticks the set (closes retired subchannels once drained).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc

from balancers import Balancer, Notifications, PickInfo, Put
from naming.core import Address, BalancerClosedError, DeadlineExceededError, Resolver

from .._base import ChannelBase
from .._errors import CallError as SyncCallError
from .._policy import CallPolicy, remaining, resync_wait, within
from .._subchannel import BaseSubchannel
from ._calls import CLOSED, KINDS
from ._errors import aio_error, closed, settle
from ._subchannel import AioSubchannel

__all__ = ["BalancedChannel"]

log = logging.getLogger("naming.channel.aio")

State = grpc.ChannelConnectivity

DRAIN_GRACE = 5.0  # seconds the calls of a removed address may still run before it is closed
WAKE_CAP = 1.0  # a waiting pick looks again at least this often (balancers that never call up())
_JOIN_TIMEOUT = 5.0
_ids = itertools.count(1)


class BalancedChannel(ChannelBase, grpc.aio.Channel):  # type: ignore[misc]  # grpc is untyped
    """A ``grpc.aio.Channel`` over a started balancer; built by :func:`naming.aio.dial`.

    Made and used on one event loop (the one running when it is made). The channel owns
    ``balancer`` (and ``resolver``) and closes them in ``close()``. ``interceptors`` (grpc.aio
    client interceptors) run on every attempt of a call; ``credentials``, ``options`` and
    ``idempotent`` are the sync channel's. Connectivity follows the sync channel's rule.
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
        interceptors: Sequence[Any] | None = None,
        drain_grace: float = DRAIN_GRACE,
        idempotent: Iterable[str] = (),
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing: asyncio.Future[None] | None = None
        self._waiters: set[asyncio.Future[None]] = set()  # picks waiting for an address
        self._watchers: set[asyncio.Future[None]] = set()  # wait_for_state_change()
        self._sleepers: set[asyncio.Future[None]] = set()  # pauses between attempts
        self._closers: set[asyncio.Task[None]] = set()  # grpc channels being closed
        self._tick_due = asyncio.Event()
        factory = functools.partial(
            AioSubchannel,
            interceptors=interceptors,
            closer=self._close_later,
            on_up=self._wake,
            on_state=self._wake_watchers,
        )
        notifications = self._share(
            target, balancer, resolver, idempotent, credentials, options, drain_grace, factory
        )
        self._subchannels.connectivity.subscribe(self._state_changed)
        self._ticker = self._loop.create_task(self._tick(), name=f"naming-aio-tick-{target}")
        self._thread = threading.Thread(
            target=self._follow,
            args=(notifications,),
            name=f"naming-aio-channel-{next(_ids)}",
            daemon=True,
        )
        self._thread.start()

    async def wait_for_subchannels(
        self,
        predicate: Callable[[Mapping[Address, BaseSubchannel]], bool],
        timeout: float | None = None,
    ) -> bool:
        """Wait until ``predicate(subchannels by address)`` holds; False if ``timeout`` passed.
        Tested now and after every address list or subchannel state change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not predicate(self._subchannels.current):
            left = remaining(deadline)
            if left == 0.0 or self._closed:
                return False
            await self._wait(self._watchers, left)
        return True

    # -- grpc.aio.Channel ---------------------------------------------------------------------

    def get_state(self, try_to_connect: bool = False) -> Any:
        """The aggregate ``grpc.ChannelConnectivity`` now; ``try_to_connect`` asks the idle
        subchannels to connect (they do anyway, at once)."""
        if try_to_connect:
            for subchannel in list(self._subchannels.current.values()):
                subchannel.connect_if_idle()
        return self._subchannels.connectivity.state

    async def wait_for_state_change(self, last_observed_state: Any) -> None:
        """Return once the aggregate state differs from ``last_observed_state``."""
        while self._subchannels.connectivity.state is last_observed_state:
            await self._wait(self._watchers, None)

    async def channel_ready(self) -> None:
        """Return once the channel is READY; ``grpc.aio.UsageError`` if it is closed first."""
        while True:
            state = self.get_state(try_to_connect=True)
            if state is State.READY:
                return
            if state is State.SHUTDOWN:
                raise grpc.aio.UsageError(CLOSED)
            await self.wait_for_state_change(state)

    async def __aenter__(self) -> BalancedChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Close the channel: calls waiting for an address end at once with CANCELLED; calls in
        flight get ``grace`` seconds to finish (None: none), then are cancelled.

        Closes the balancer, the resolver (off the loop: they may block), the channel's thread and
        every subchannel. Idempotent; a second ``close()`` waits for the first. A call made
        afterwards raises ``grpc.aio.UsageError``, as on a closed ``grpc.aio`` channel.
        """
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = self._loop.create_future()
        self._closed = True
        self._wake()
        self._wake_watchers()
        for sleeper in self._sleepers:
            settle(sleeper)
        try:
            if grace:
                await self._drain(grace)
            await asyncio.to_thread(self._close_balancer)
            self._ticker.cancel()
            self._subchannels.close()
            await asyncio.gather(self._ticker, *self._closers, return_exceptions=True)
        finally:
            self._closing.set_result(None)

    def __repr__(self) -> str:
        state = self._subchannels.connectivity.state.name
        return f"<aio.BalancedChannel {self.target!r} {self._balancer.name or 'balancer'} {state}>"

    # -- the channel's thread, its ticker and closing ----------------------------------------------

    def _follow(self, notifications: Notifications | None) -> None:
        """(thread) Hand the balancer's address lists (its changes when offered) to the loop,
        until the channel or the balancer closes."""
        changes = getattr(notifications, "changes", None)
        while not self._closed and notifications is not None:
            try:
                news = changes(None) if changes is not None else notifications.get(None)
            except DeadlineExceededError:
                continue
            except BalancerClosedError:
                return
            except Exception:
                log.exception("channel: reading the address lists of %s failed", self.target)
                return
            if not self._call_soon(self._apply, news):
                return

    def _call_soon(self, function: Callable[..., None], *args: Any) -> bool:
        """``function(*args)`` on the loop, from the thread; False once the loop is closed."""
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed: nobody is left to apply it
            return False
        return True

    def _apply(self, news: Any) -> None:
        """(loop) Apply one address list or change from the balancer."""
        if self._closed:
            return
        try:
            if isinstance(news, list):
                self._subchannels.update(news)
            elif news.full is not None:
                self._subchannels.update(news.full)
            else:
                self._subchannels.apply(news.added, news.removed)
        except Exception:
            log.exception("channel: updating the subchannels of %s failed", self.target)
        self._wake()
        self._wake_watchers()
        self._tick_due.set()

    async def _tick(self) -> None:
        """Close the retired subchannels once drained (or their grace has passed)."""
        subchannels = self._subchannels
        while not self._closed:
            subchannels.tick()
            self._tick_due.clear()
            interval = subchannels.interval()
            with contextlib.suppress(asyncio.TimeoutError):  # 3.10: not TimeoutError
                await asyncio.wait_for(self._tick_due.wait(), interval)

    def _close_later(self, closing: Awaitable[None]) -> None:
        """Run ``closing`` (a grpc channel's ``close()``) in the background; ``close()`` awaits it."""
        task = asyncio.ensure_future(closing)
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _drain(self, grace: float) -> None:
        """Wait up to ``grace`` s for the calls in flight to end."""
        deadline = time.monotonic() + grace
        while any(sub.in_flight for sub in self._subchannels.current.values()):
            left = remaining(deadline)
            if not left:
                return
            await asyncio.sleep(min(left, 0.02))

    def _close_balancer(self) -> None:
        """(executor thread) Close the balancer (which ends the channel's thread) and resolver."""
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
        self._thread.join(_JOIN_TIMEOUT)
        if self._thread.is_alive():
            log.warning("channel: the thread of %s did not stop", self.target)

    # -- waiting -------------------------------------------------------------------------------

    async def _wait(self, waiters: set[asyncio.Future[None]], timeout: float | None) -> None:
        """Wait until ``waiters`` are woken, at most ``timeout`` s."""
        waiter = self._loop.create_future()
        waiters.add(waiter)
        timer = None if timeout is None else self._loop.call_later(timeout, settle, waiter)
        try:
            await waiter
        finally:
            waiters.discard(waiter)
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        """(loop) Wake every waiting pick: an address came up, the list changed, or closing."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            settle(waiter)

    def _wake_watchers(self) -> None:
        watchers, self._watchers = self._watchers, set()
        for watcher in watchers:
            settle(watcher)

    def _state_changed(self, state: Any) -> None:
        self._wake_watchers()

    # -- picking ------------------------------------------------------------------------------

    async def pick_async(
        self,
        policy: CallPolicy,
        info: PickInfo,
        wait: bool,
        deadline: float | None,
        timeout: float | None,
    ) -> tuple[BaseSubchannel, Put | None]:
        """The subchannel for one call (counted in) and ``put``, awaiting where the sync pick
        blocks; raises the asyncio CallError the policy gives up with."""
        picks = 0
        while True:
            try:
                picked = self.pick(policy, info, wait, deadline, False, timeout, picks)
            except SyncCallError as failed:
                raise aio_error(failed) from None
            if picked is not None:
                return picked
            if wait:  # no address is ready: wait for up(), a new list or close
                left = remaining(deadline)
                if left == 0.0:
                    last = getattr(self._balancer, "resolver_error", None)
                    expired = DeadlineExceededError("no address became ready in time")
                    error = policy.pick_failed(expired, True, self.target, last, timeout)
                    raise aio_error(error) if error is not None else closed()
                await self._wait(self._waiters, WAKE_CAP if left is None else min(left, WAKE_CAP))
            else:  # the address had no subchannel yet: wait for the list to catch up
                picks += 1
                await self._wait(self._waiters, max(resync_wait(deadline), 0.0))

    async def pause(self, seconds: float, deadline: float | None) -> None:
        """Sleep ``seconds`` (never past ``deadline``); wake early when the channel closes."""
        seconds = within(seconds, deadline)
        if seconds > 0 and not self._closed:
            await self._wait(self._sleepers, seconds)
