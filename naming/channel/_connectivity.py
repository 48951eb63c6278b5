"""The aggregate connectivity of a balanced channel, and the subscribers it is delivered to.

The rule (docs/channel.md, "Connectivity"): IDLE until the first address list arrives, then READY if
any subchannel is ready, else CONNECTING if any is connecting or idle, else TRANSIENT_FAILURE;
SHUTDOWN once the channel is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import grpc

__all__ = ["Connectivity", "aggregate"]

log = logging.getLogger(__name__)

State = grpc.ChannelConnectivity


def aggregate(closed: bool, listed: bool, states: Iterable[Any]) -> Any:
    """The channel's state: ``closed``, whether a list has arrived, its subchannels' ``states``."""
    if closed:
        return State.SHUTDOWN
    if not listed:
        return State.IDLE
    seen = set(states)
    if State.READY in seen:
        return State.READY
    if State.IDLE in seen or State.CONNECTING in seen:
        return State.CONNECTING
    return State.TRANSIENT_FAILURE


class Connectivity:
    """The state ``evaluate()`` gives, delivered to every subscriber in order, once per change.

    ``deliver()`` may be called from any thread (grpc's included) after anything that may change the
    state; it never blocks for long. One thread delivers at a time; a change seen while it delivers
    is delivered by it too, so a subscriber always ends up with the latest state.
    """

    def __init__(self, evaluate: Callable[[], Any]) -> None:
        self._evaluate = evaluate
        self._lock = threading.Lock()
        self.state: Any = State.IDLE
        self._subscribers: list[list[Any]] = []  # [callback, last state delivered to it]
        self._delivering = False

    def subscribe(self, callback: Callable[[Any], None]) -> None:
        with self._lock:
            self._subscribers.append([callback, None])
        self.deliver()

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        with self._lock:
            for entry in self._subscribers:
                if entry[0] == callback:
                    self._subscribers.remove(entry)
                    return

    def deliver(self) -> None:
        """Recompute the aggregate state and bring every subscriber up to date, in order."""
        with self._lock:
            self.state = self._evaluate()
            if self._delivering:
                return  # the delivering thread will see the new state
            self._delivering = True
        while True:
            with self._lock:
                state = self.state
                due = [entry for entry in self._subscribers if entry[1] is not state]
                if not due:
                    self._delivering = False
                    return
                for entry in due:
                    entry[1] = state
            for callback, _ in due:
                try:
                    callback(state)
                except Exception:
                    log.exception("channel: a connectivity callback failed")
