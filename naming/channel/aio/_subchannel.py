"""AioSubchannel: the one pick_first ``grpc.aio`` channel an asyncio balanced channel keeps per address.

Its connectivity is followed by a task of its own on the event loop, not a thread: it reads
``get_state(try_to_connect=True)`` (which also asks an IDLE channel to connect again, so that a
server that comes back rejoins by itself) and awaits ``wait_for_state_change``. Entering READY
calls ``balancer.up(address)`` and leaving it the ``down`` that ``up()`` returned, as the sync
subchannel does (:class:`naming.channel._subchannel.BaseSubchannel` holds that logic for both).

Every method runs on the loop's thread. Closing is asynchronous in ``grpc.aio``, so ``close()``
detaches at once and hands the coroutine that closes the grpc channel to ``closer``; the balanced
channel awaits those before its own ``close()`` returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from balancers import Balancer
from naming.core import Address

from .._subchannel import BaseSubchannel

__all__ = ["AioSubchannel"]

log = logging.getLogger("naming.channel.aio")


class AioSubchannel(BaseSubchannel):
    """One ``grpc.aio`` channel to ``address`` (with ``interceptors``), reporting to ``balancer``;
    ``on_up()`` follows every ``balancer.up()`` (it wakes the calls waiting for an address), and
    ``on_state()`` every change of :attr:`state` (it wakes ``wait_for_subchannels``)."""

    def __init__(
        self,
        address: Address,
        balancer: Balancer,
        *,
        credentials: Any = None,
        options: Sequence[tuple[str, Any]] = (),
        on_change: Callable[[BaseSubchannel], None] = lambda subchannel: None,
        poll: bool = True,  # the sync subchannel's; a task follows this one
        interceptors: Sequence[Any] | None = None,
        closer: Callable[[Awaitable[None]], None],
        on_up: Callable[[], None] = lambda: None,
        on_state: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(address, balancer, on_change)
        chosen = list(interceptors) if interceptors else None
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(
                address.addr, options=list(options), interceptors=chosen
            )
        else:
            self._channel = grpc.aio.secure_channel(
                address.addr, credentials, options=list(options), interceptors=chosen
            )
        self._closer = closer
        self._on_up = on_up
        self._on_state_seen = on_state
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._follow(), name=f"naming-aio-subchannel-{address.addr}"
        )

    async def _follow(self) -> None:
        """Follow the connectivity until detached (then cancelled)."""
        channel = self._channel
        state = channel.get_state(try_to_connect=True)
        while not self._detached:
            if state is not self.state:
                self._on_state(state)
                self._on_state_seen()
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)

    def _up(self) -> None:
        """``balancer.up()``, then wake the calls waiting for a ready address."""
        super()._up()
        self._on_up()

    def connect_if_idle(self) -> None:
        """Ask grpc to connect when the last state it reported is IDLE. Never blocks."""
        if not self._detached and not self._closed and self.state is grpc.ChannelConnectivity.IDLE:
            self._channel.get_state(try_to_connect=True)

    def _unfollow(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def close(self, reason: BaseException | None = None) -> None:
        """Detach, then close the grpc channel (in the background, through ``closer``), which
        cancels the calls still on it. Idempotent."""
        self.detach(reason)
        if self._closed:
            return
        self._closed = True
        self.closing = True
        self._closer(self._channel.close())
