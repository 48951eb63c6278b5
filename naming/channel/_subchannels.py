"""Subchannels: the set of subchannels a balanced channel keeps in step with its balancer's lists.

An address that appears is dialled at once; one that leaves is *retired*: reported down at once,
closed once its last call has ended or its grace period has passed. The aggregate connectivity of
the set is :attr:`Subchannels.connectivity` (:mod:`naming.channel._connectivity`).

Scale: a change costs O(changes), whatever the number of addresses. ``apply()`` takes what was
added and removed (``Notifications.changes()``); only a full list (``update()``, for balancers
that hand out nothing else) is compared with the set, in O(n) with dictionaries. The lookup of the
calls is one dictionary changed in place, the aggregate state is kept as counts per state, and
connectivity is polled by one :class:`naming.channel._poller.Poller`, not a thread per subchannel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import grpc

from balancers import Balancer
from naming.core import Address

from ._connectivity import Connectivity, aggregate
from ._poller import CHUNK, Poller
from ._subchannel import IDLE, BaseSubchannel, Subchannel

__all__ = ["NUDGE_INTERVAL", "REAP_INTERVAL", "Subchannels"]

log = logging.getLogger(__name__)

REAP_INTERVAL = 0.05  # how often removed subchannels are checked while some are draining
NUDGE_INTERVAL = 0.5  # how often idle subchannels that are not polled are asked to connect again


class Subchannels:
    """The subchannels of one balanced channel, kept in step with the balancer's address lists.

    ``apply()``, ``update()`` and ``tick()`` run on the channel's thread (one writer); ``current``
    is the calls' lookup, read without a lock (a dictionary, changed in place by that thread).
    ``poll=False`` makes every subchannel follow grpc's subscription instead of the poller.
    ``factory`` makes a subchannel with :class:`naming.channel._subchannel.Subchannel`'s arguments:
    the asyncio channel passes its own, and then every method runs on the event loop's thread.
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        credentials: Any = None,
        options: Sequence[tuple[str, Any]] = (),
        drain_grace: float = 5.0,
        name: str = "channel",
        poll: bool = True,
        on_failure: Callable[[], None] | None = None,
        factory: Callable[..., BaseSubchannel] = Subchannel,
    ) -> None:
        self._balancer = balancer
        self._factory = factory
        self._on_failure = on_failure
        self._credentials = credentials
        self._options = tuple(options)
        self._drain_grace = drain_grace
        self._name = name
        self._poll = poll
        self._cond = threading.Condition()
        self.current: dict[Address, BaseSubchannel] = {}
        self.retired: list[BaseSubchannel] = []
        # The state each current subchannel is counted in, and the counts (every state present,
        # so that reading them never races a new key).
        self._counted: dict[Address, Any] = {}
        self._counts: dict[Any, int] = dict.fromkeys(grpc.ChannelConnectivity, 0)
        self._polled = 0
        self._updates = 0
        self._closed = False
        self._reap_due = 0.0
        self._nudge_due = 0.0
        self.poller = Poller(lambda: list(self.current.values()))
        self.connectivity = Connectivity(self._evaluate)

    def get(self, address: Address) -> BaseSubchannel | None:
        return self.current.get(address)

    def snapshot(self) -> dict[Address, BaseSubchannel]:
        return dict(self.current)

    def update(self, addresses: Iterable[Address]) -> None:
        """Make the set the full list ``addresses``: O(n + m), for balancers without changes."""
        wanted = dict.fromkeys(addresses)
        current = dict(self.current)
        self.apply(
            [address for address in wanted if address not in current],
            [address for address in current if address not in wanted],
        )

    def apply(self, added: Iterable[Address], removed: Iterable[Address]) -> None:
        """Dial the ``added`` addresses that have no subchannel and retire the ``removed`` ones
        that have one (they close once drained): O(changes)."""
        gone: list[BaseSubchannel] = []
        with self._cond:
            if self._closed:
                return
            for address in removed:
                subchannel = self.current.pop(address, None)
                if subchannel is not None:
                    self._uncount(subchannel)
                    gone.append(subchannel)
            self.retired.extend(gone)
        dialled = 0
        for address in added:
            if address in self.current:
                continue
            subchannel = self._dial(address)  # outside the lock: a grpc channel takes ~50 us
            if not self._add(subchannel):  # close() came meanwhile
                subchannel.close()
                break
            dialled += 1
            if dialled % CHUNK == 0:  # a long list: keep the others' connectivity flowing
                self.poller.poll()
        with self._cond:
            self._updates += 1
            self._cond.notify_all()
        for subchannel in gone:
            subchannel.retire()
        log.debug(
            "channel: %s: address list applied: %d added, %d removed; %d subchannels",
            self._name,
            dialled,
            len(gone),
            len(self.current),
        )
        self.connectivity.deliver()

    def _add(self, subchannel: BaseSubchannel) -> bool:
        """Make ``subchannel`` current; False (and nothing done) once the set is closed."""
        with self._cond:
            if self._closed:
                return False
            self.current[subchannel.address] = subchannel
            self._count(subchannel)
            return True

    def _dial(self, address: Address) -> BaseSubchannel:
        return self._factory(
            address,
            self._balancer,
            credentials=self._credentials,
            options=self._options,
            on_change=self._changed,
            poll=self._poll,
        )

    # -- the aggregate, as counts ----------------------------------------------------------------

    def _count(self, subchannel: BaseSubchannel) -> None:
        """Under the lock: count a subchannel that became current."""
        state = subchannel.state
        self._counted[subchannel.address] = state
        self._counts[state] += 1
        self._polled += subchannel.polled

    def _uncount(self, subchannel: BaseSubchannel) -> None:
        """Under the lock: stop counting a subchannel that left ``current``."""
        self._counts[self._counted.pop(subchannel.address)] -= 1
        self._polled -= subchannel.polled

    def _changed(self, subchannel: BaseSubchannel) -> None:
        """``subchannel.state`` changed (any thread): recount it if current, deliver; a current one
        entering TRANSIENT_FAILURE calls ``on_failure`` (the channel's ``resolve_now``)."""
        failed = False
        with self._cond:
            if self.current.get(subchannel.address) is subchannel:
                state = subchannel.state
                counted = self._counted[subchannel.address]
                if state is not counted:
                    self._counts[counted] -= 1
                    self._counts[state] += 1
                    self._counted[subchannel.address] = state
                    failed = state is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        if failed and self._on_failure is not None:
            try:
                self._on_failure()
            except Exception:
                log.exception("channel: %s: resolve_now() failed", self._name)
        self.connectivity.deliver()

    def _evaluate(self) -> Any:
        states = [state for state, count in self._counts.items() if count > 0]
        return aggregate(self._closed, self._updates > 0, states)

    # -- the channel's thread --------------------------------------------------------------------

    def tick(self) -> None:
        """Poll the next chunk of connectivity if due; close the retired subchannels whose calls
        have ended (or whose grace has passed); ask idle ones that are not polled to connect.
        The channel's thread calls it at least every ``interval()`` seconds."""
        now = time.monotonic()
        if self._polled:
            self.poller.poll()
        if self.retired and now >= self._reap_due:
            self._reap_due = now + REAP_INTERVAL
            for subchannel in list(self.retired):
                if subchannel.close_if_drained(self._drain_grace):
                    with self._cond:
                        self.retired.remove(subchannel)
        if self._nudging() and now >= self._nudge_due:
            self._nudge_due = now + NUDGE_INTERVAL
            for subchannel in list(self.current.values()):
                if not subchannel.polled:
                    subchannel.connect_if_idle()

    def interval(self) -> float | None:
        """Seconds until the next ``tick()`` is due; None when nothing needs one."""
        now = time.monotonic()
        waits = []
        if self._polled:
            waits.append(self.poller.wait())
        if self.retired:
            waits.append(self._reap_due - now)
        if self._nudging():
            waits.append(self._nudge_due - now)
        return max(min(waits), 0.0) if waits else None

    def _nudging(self) -> bool:
        """True when some subchannels follow grpc's subscription and one of them may be IDLE."""
        return len(self.current) > self._polled and self._counts[IDLE] > 0

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for(self, address: Address, timeout: float) -> None:
        """Wait up to ``timeout`` s for a subchannel of ``address`` (or the next update, or close)."""
        with self._cond:
            if timeout > 0 and not self._closed and address not in self.current:
                updates = self._updates
                self._cond.wait_for(lambda: self._closed or self._updates != updates, timeout)

    def wait_until(
        self, predicate: Callable[[Mapping[Address, BaseSubchannel]], bool], timeout: float | None
    ) -> bool:
        """Wait until ``predicate(subchannels by address)`` holds, tested after each update;
        its last value. The mapping is live and read-only; read it only inside ``predicate``."""
        view = MappingProxyType(self.current)
        with self._cond:
            return self._cond.wait_for(lambda: predicate(view), timeout)

    def close(self) -> None:
        """Close every subchannel, current and retired. Idempotent."""
        with self._cond:
            self._closed = True
            subchannels = [*self.current.values(), *self.retired]
            self.current.clear()
            self._counted.clear()
            self._counts = dict.fromkeys(grpc.ChannelConnectivity, 0)
            self._polled = 0
            self.retired = []
            self._cond.notify_all()
        reason = ConnectionAbortedError("channel: the channel is closed")
        for subchannel in subchannels:  # detach all first: grpc's pollers (if any) stop together
            subchannel.detach(reason)
        for subchannel in subchannels:
            subchannel.close(reason)
        self.connectivity.deliver()
