"""Subchannels: the set of subchannels a balanced channel keeps in step with its balancer's lists.

An address that appears is dialled at once; one that leaves is *retired*: reported down at once,
closed once its last call has ended or its grace period has passed. The aggregate connectivity of
the set is :attr:`Subchannels.connectivity` (:mod:`naming.channel._connectivity`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from balancers import Balancer
from naming.core import Address

from ._connectivity import Connectivity, aggregate
from ._subchannel import IDLE, Subchannel

__all__ = ["NUDGE_INTERVAL", "REAP_INTERVAL", "Subchannels"]

REAP_INTERVAL = 0.05  # how often removed subchannels are checked while some are draining
NUDGE_INTERVAL = 0.5  # how often idle subchannels are asked to connect again


class Subchannels:
    """The subchannels of one balanced channel, kept in step with the balancer's address lists.

    ``update()`` and ``tick()`` run on the channel's notify thread; ``current`` is the calls'
    lock-free lookup (a dict replaced as a whole, never changed in place).
    """

    def __init__(
        self,
        balancer: Balancer,
        *,
        credentials: Any = None,
        options: Sequence[tuple[str, Any]] = (),
        drain_grace: float = 5.0,
    ) -> None:
        self._balancer = balancer
        self._credentials = credentials
        self._options = tuple(options)
        self._drain_grace = drain_grace
        self._cond = threading.Condition()
        # By address; replaced as a whole, never changed in place: calls read it without a lock.
        self.current: dict[Address, Subchannel] = {}
        self.retired: list[Subchannel] = []
        self._updates = 0
        self._closed = False
        self.connectivity = Connectivity(self._evaluate)

    def get(self, address: Address) -> Subchannel | None:
        return self.current.get(address)

    def snapshot(self) -> dict[Address, Subchannel]:
        return dict(self.current)

    def update(self, addresses: Iterable[Address]) -> None:
        """Dial the new addresses, retire the ones that left (they close once drained)."""
        wanted = list(dict.fromkeys(addresses))
        with self._cond:
            if self._closed:
                return
            current = self.current
            removed = [sub for address, sub in current.items() if address not in wanted]
            self.current = {
                address: current.get(address) or self._dial(address) for address in wanted
            }
            self.retired.extend(removed)
            self._updates += 1
            self._cond.notify_all()
        for subchannel in removed:
            subchannel.retire()
        self.connectivity.deliver()

    def _dial(self, address: Address) -> Subchannel:
        return Subchannel(
            address,
            self._balancer,
            credentials=self._credentials,
            options=self._options,
            on_change=self.connectivity.deliver,
        )

    def tick(self) -> None:
        """Close the retired subchannels whose calls have ended (or whose grace has passed), and
        ask idle ones to connect. The notify thread calls it every ``interval()`` seconds."""
        for subchannel in list(self.retired):
            if subchannel.close_if_drained(self._drain_grace):
                with self._cond:
                    self.retired.remove(subchannel)
        for subchannel in self.current.values():
            subchannel.connect_if_idle()

    def interval(self) -> float | None:
        """Seconds until the next ``tick()`` is due; None when nothing needs one."""
        if self.retired:
            return REAP_INTERVAL
        if any(subchannel.state is IDLE for subchannel in self.current.values()):
            return NUDGE_INTERVAL
        return None

    def wait_for(self, address: Address, timeout: float) -> None:
        """Wait up to ``timeout`` s for a subchannel of ``address`` (or the next update, or close)."""
        with self._cond:
            if timeout > 0 and not self._closed and address not in self.current:
                updates = self._updates
                self._cond.wait_for(lambda: self._closed or self._updates != updates, timeout)

    def close(self) -> None:
        """Close every subchannel, current and retired. Idempotent."""
        with self._cond:
            self._closed = True
            subchannels = [*self.current.values(), *self.retired]
            self.current, self.retired = {}, []
            self._cond.notify_all()
        reason = ConnectionAbortedError("channel: the channel is closed")
        for subchannel in subchannels:  # detach all first: their grpc pollers stop together
            subchannel.detach(reason)
        for subchannel in subchannels:
            subchannel.close(reason)
        self.connectivity.deliver()

    def _evaluate(self) -> Any:
        states = (subchannel.state for subchannel in self.current.values())
        return aggregate(self._closed, self._updates > 0, states)
