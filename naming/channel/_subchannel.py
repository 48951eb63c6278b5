"""Subchannel: the one pick_first ``grpc.Channel`` that a balanced channel keeps per address.

Its connectivity drives the balancer. Entering READY calls ``balancer.up(address)``; leaving READY
calls the ``down`` that ``up()`` returned (legacy grpc-go ``addrConn``). When grpc lets the connection
go IDLE (the server closed it) the subchannel asks grpc to connect again at once, as the legacy v1
wrapper did, so that a server that comes back rejoins by itself.

How it learns its connectivity: grpcio's ``Channel.subscribe`` runs one poller thread per channel,
and a process with thousands of them stalls. So a subchannel is *polled* instead: the channel's
own thread calls :meth:`Subchannel.poll` now and then (:mod:`naming.channel._poller`), which reads
the state with grpcio's ``cygrpc.Channel.check_connectivity_state(try_to_connect)``, a private
API of grpcio (``grpc._channel.Channel._channel``), and one non-blocking C call. Where that API is
missing, the subchannel falls back to ``subscribe`` and its thread.

Calls on a subchannel are counted while they run, so that a subchannel whose address left the list
(it is *retired*) can be closed when its last call ends, or after a grace period. The set of them a
channel keeps is :class:`naming.channel._subchannels.Subchannels`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from balancers import Balancer, Down
from naming.core import Address

__all__ = ["IDLE", "READY", "BaseSubchannel", "Subchannel"]

log = logging.getLogger(__name__)

READY = grpc.ChannelConnectivity.READY
IDLE = grpc.ChannelConnectivity.IDLE
_POLL_PERIOD = 0.25  # grpcio's connectivity poller wakes every 0.2 s
# grpc core's connectivity numbers (what check_connectivity_state returns) to grpcio's enum.
_STATES = {state.value[0]: state for state in grpc.ChannelConnectivity}


def _nothing(state: Any) -> None:
    """The callback of the subscribe/unsubscribe pair that asks grpc to connect."""


def state_reader(channel: Any) -> Callable[[bool], int] | None:
    """``check_connectivity_state(try_to_connect)`` of grpcio's core channel under ``channel``:
    the state now, without blocking or a thread. None when this grpcio has no such private API."""
    core = getattr(channel, "_channel", None)
    check = getattr(core, "check_connectivity_state", None)
    return check if callable(check) else None


def _await_poller(channel: Any) -> None:
    """Wait (at most 1 s) until grpcio's connectivity poller thread of ``channel`` has stopped.

    It stops at a wake-up (every 0.2 s) that finds nobody subscribed and no connect request
    pending; it raises if it finds its channel closed before that. Reading its flag is private
    grpcio API; without it, sleep two poll periods.
    """
    poller: Any = getattr(channel, "_connectivity_state", None)
    if not isinstance(getattr(poller, "polling", None), bool):
        time.sleep(2 * _POLL_PERIOD)
        return
    deadline = time.monotonic() + 1.0
    while poller.polling and time.monotonic() < deadline:
        time.sleep(0.01)


class BaseSubchannel:
    """What every subchannel does whatever drives it: counting calls, caching grpc's
    multicallables, and turning connectivity into ``balancer.up()`` / ``down()``.

    The sync :class:`Subchannel` and the asyncio one (:mod:`naming.channel.aio._subchannel`) add the
    grpc channel, how its connectivity is followed (:meth:`_unfollow` stops that) and closing.
    """

    _channel: Any

    def __init__(
        self,
        address: Address,
        balancer: Balancer,
        on_change: Callable[[BaseSubchannel], None],
    ) -> None:
        self.address = address
        self.state: Any = IDLE  # the last grpc.ChannelConnectivity that grpc delivered
        self.closing = False  # set while a retired subchannel is being closed; callers back off
        self.retired_at: float | None = None
        self._balancer = balancer
        self._on_change = on_change
        self._lock = threading.Lock()
        self._down: Down | None = None
        self._detached = False  # no longer following connectivity
        self._closed = False  # the grpc channel is closed
        # In-flight calls. list.append() and list.pop() are atomic, so counting needs no lock.
        self._calls: list[None] = []
        self._methods: dict[tuple[Any, ...], Any] = {}

    # -- calls ---------------------------------------------------------------------------------

    def method(
        self, kind: str, name: str, serializer: Any, deserializer: Any, registered: Any
    ) -> Any:
        """grpc's multicallable of ``kind`` ("unary_unary", ...) for ``name``, made once."""
        return self.multicallable((kind, name, serializer, deserializer, registered))

    def multicallable(self, spec: tuple[Any, ...]) -> Any:
        """``method(*spec)``, with ``spec`` as the cache key: one dictionary lookup per call."""
        found = self._methods.get(spec)
        if found is None:
            with self._lock:  # grpc's registered-method handles are not thread-safe to create
                found = self._methods.get(spec)
                if found is None:
                    kind, name, serializer, deserializer, registered = spec
                    found = getattr(self._channel, kind)(
                        name,
                        request_serializer=serializer,
                        response_deserializer=deserializer,
                        _registered_method=registered,
                    )
                    self._methods[spec] = found
        return found

    def acquire(self) -> bool:
        """Count one call in; False (and nothing counted) when the subchannel is being closed."""
        self._calls.append(None)
        if self.closing:
            self._calls.pop()
            return False
        return True

    def release(self) -> None:
        """Count one call out; once per successful ``acquire()``."""
        self._calls.pop()

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def polled(self) -> bool:
        """True when :meth:`poll` tracks the connectivity (the sync poller's business)."""
        return False

    def poll(self) -> None:
        """Read the connectivity now, for the sync poller; nothing here."""

    def connect_if_idle(self) -> None:
        """Ask grpc to connect if the last state it reported is IDLE; nothing here."""

    # -- lifecycle -----------------------------------------------------------------------------

    def retire(self) -> None:
        """The address left the list: report it down now; ``close_if_drained()`` closes it later."""
        self.retired_at = time.monotonic()
        self.detach(ConnectionAbortedError(f"channel: {self.address.addr} was removed"))

    def close(self, reason: BaseException | None = None) -> None:
        raise NotImplementedError

    def close_if_drained(self, grace: float) -> bool:
        """Close a retired subchannel with no call in flight, or one retired ``grace`` s ago."""
        self.closing = True  # before counting: a call that acquires after this will back off
        expired = self.retired_at is not None and time.monotonic() - self.retired_at >= grace
        if self._calls and not expired:
            self.closing = self._closed
            return False
        if self._calls:
            log.info(
                "channel: closing %s with %d calls still running after %.1fs",
                self.address.addr,
                len(self._calls),
                grace,
            )
        self.close(ConnectionAbortedError(f"channel: {self.address.addr} was removed"))
        return True

    def detach(self, reason: BaseException | None = None) -> None:
        """Stop following connectivity and report the address down: the first half of closing."""
        with self._lock:
            if self._detached:
                return
            self._detached = True
            down, self._down = self._down, None
        if down is not None:
            down(reason)
        self._unfollow()

    def _unfollow(self) -> None:
        """Stop following connectivity (after :meth:`detach` has reported the address down)."""

    # -- connectivity --------------------------------------------------------------------------

    def _on_state(self, state: Any) -> None:
        """A new state (from poll(), a task following it, or grpc's delivery thread)."""
        with self._lock:
            if self._detached:
                return
            previous, self.state = self.state, state
            down = None
            if previous is READY and state is not READY:
                down, self._down = self._down, None
        log.debug("channel: %s: %s -> %s", self.address.addr, previous.name, state.name)
        if down is not None:
            down(ConnectionError(f"channel: connection to {self.address.addr} is {state.name}"))
        if state is READY and previous is not READY:
            self._up()
        self.connect_if_idle()
        self._on_change(self)

    def _up(self) -> None:
        try:
            down = self._balancer.up(self.address)
        except Exception:
            log.exception("channel: the balancer failed in up(%s)", self.address.addr)
            return
        if down is None:
            return
        with self._lock:
            if not self._detached:
                self._down, down = down, None
        if down is not None:  # detached meanwhile
            down(ConnectionAbortedError(f"channel: {self.address.addr} was removed"))

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.state.name
        return f"<Subchannel {self.address.addr} {state} in_flight={len(self._calls)}>"


class Subchannel(BaseSubchannel):
    """One grpc channel to ``address``, reporting its connectivity to ``balancer``.

    With ``poll`` (the default, when grpcio allows it: :attr:`polled`) its connectivity is read by
    :meth:`poll`, which its owner calls; otherwise grpc delivers it on a thread of its own.
    ``on_change(subchannel)`` follows every change of :attr:`state`.

    Thread-safety: every method may be called from any thread. The connectivity path never blocks
    and never closes a grpc channel. ``close()`` is idempotent.
    """

    def __init__(
        self,
        address: Address,
        balancer: Balancer,
        *,
        credentials: Any = None,
        options: Sequence[tuple[str, Any]] = (),
        on_change: Callable[[BaseSubchannel], None] = lambda subchannel: None,
        poll: bool = True,
    ) -> None:
        super().__init__(address, balancer, on_change)
        if credentials is None:
            self._channel = grpc.insecure_channel(address.addr, options=list(options))
        else:
            self._channel = grpc.secure_channel(address.addr, credentials, options=list(options))
        self._check = state_reader(self._channel) if poll else None
        if self._check is None:
            self._channel.subscribe(self._on_state, try_to_connect=True)
        else:
            self._check(True)  # start connecting; the next poll() reads where that got

    @property
    def polled(self) -> bool:
        """True when :meth:`poll` tracks the connectivity; False: grpc's subscription does."""
        return self._check is not None

    def _unfollow(self) -> None:
        if self._check is None:
            self._channel.unsubscribe(self._on_state)

    def close(self, reason: BaseException | None = None) -> None:
        """Detach, then close the grpc channel, which cancels the calls still on it. Idempotent.

        A subchannel that is not polled first waits until grpc's connectivity poller of this
        channel has stopped (it wakes every 0.2 s and fails if it finds its channel closed while
        it still had work). Not for grpc threads.
        """
        self.detach(reason)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.closing = True
        if self._check is None:
            _await_poller(self._channel)
        self._channel.close()

    def poll(self) -> None:
        """Read the connectivity grpc has now (asking it to connect when idle) and act on a change.

        Never blocks; a no-op once detached, or when grpc's subscription tracks this subchannel.
        """
        check = self._check
        if check is None or self._detached:
            return
        try:
            state = _STATES.get(check(True))
        except ValueError:  # closed meanwhile
            return
        if state is not None and state is not self.state:
            self._on_state(state)

    def connect_if_idle(self) -> None:
        """Ask grpc to connect if the last state it reported is IDLE (grpc-go's ``sc.Connect()``).

        Never blocks. A polled subchannel asks grpc directly. Otherwise grpcio's public way to ask
        is a subscription with ``try_to_connect``; its poller thread acts on it within 0.2 s, and
        the channel calls this now and then, because grpcio reports no change when a connection
        came and went between two of its polls.
        """
        with self._lock:
            if self._detached or self.state is not IDLE:
                return
            if self._check is not None:
                with contextlib.suppress(ValueError):  # closed meanwhile
                    self._check(True)
                return
            self._channel.subscribe(_nothing, try_to_connect=True)
            self._channel.unsubscribe(_nothing)
