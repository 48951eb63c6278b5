"""round_robin: strict rotation over the connected addresses, in list order (legacy grpc.RoundRobin)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from naming.core import Address, hookimpl

from ._balancer import PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState

__all__ = ["RoundRobin", "RoundRobinPicker"]


class RoundRobinPicker(Picker):
    """Rotates over ``ready``; ``next()`` on an itertools counter is atomic, so no lock is needed."""

    __slots__ = ("_carried", "_counter", "_last", "ready")

    def __init__(
        self, ready: Sequence[Address], start: int = 0, carried: Address | None = None
    ) -> None:
        self.ready = ready
        self._counter = itertools.count(start)
        self._last: int | None = None
        self._carried = carried

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        index = next(self._counter) % len(self.ready)
        self._last = index
        return self.ready[index], None

    @property
    def index(self) -> int | None:
        """The index in ``ready`` picked last by this picker, if any."""
        return self._last

    @property
    def last_picked(self) -> Address | None:
        """The address picked last, by this picker or by the ones it replaced."""
        return self._carried if self._last is None else self.ready[self._last]


class RoundRobin(PickerBalancer):
    """Each RPC goes to the connected address after the one the previous RPC got.

    As in grpc-go's legacy roundRobin, the rotation carries on across changes: after the address
    picked last, the next connected one in list order is next.
    """

    name = "round_robin"

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        last = previous.last_picked if isinstance(previous, RoundRobinPicker) else None
        return RoundRobinPicker(state.ready, _resume_after(last, state, previous), last)


def _resume_after(last: Address | None, state: PickerState, previous: Picker | None) -> int:
    """Index into ``state.ready`` of the first connected address after ``last`` in list order."""
    if last is None:
        return 0
    position = state.position(last)
    if position is None:  # it was deleted: go on from the same place in the rotation
        index = previous.index if isinstance(previous, RoundRobinPicker) else None
        return 0 if index is None else (index + 1) % len(state.ready)
    return state.index_after(position) % len(state.ready)


@hookimpl
def naming_register_balancers(register: Callable[[type[RoundRobin]], None]) -> None:
    register(RoundRobin)
