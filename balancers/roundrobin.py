"""round_robin: strict rotation over the connected addresses, in list order (legacy grpc.RoundRobin)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from naming import Address, hookimpl

from ._balancer import Put
from ._picker import Picker, PickerBalancer

__all__ = ["RoundRobin", "RoundRobinPicker"]


class RoundRobinPicker(Picker):
    """Rotates over ``ready``; ``next()`` on an itertools counter is atomic, so no lock is needed."""

    __slots__ = ("_counter", "last", "ready")

    def __init__(self, ready: tuple[Address, ...], start: int = 0) -> None:
        self.ready = ready
        self._counter = itertools.count(start)
        self.last: int | None = None

    def pick(self) -> tuple[Address, Put | None]:
        index = next(self._counter) % len(self.ready)
        self.last = index
        return self.ready[index], None


class RoundRobin(PickerBalancer):
    """Each RPC goes to the connected address after the one the previous RPC got.

    As in grpc-go's legacy roundRobin, the rotation carries on across changes: after the address
    picked last, the next connected one in list order is next.
    """

    name = "round_robin"

    def build_picker(
        self,
        ready: tuple[Address, ...],
        addresses: tuple[Address, ...],
        previous: Picker | None,
    ) -> Picker:
        return RoundRobinPicker(ready, _resume_after(ready, addresses, previous))


def _resume_after(
    ready: tuple[Address, ...], addresses: tuple[Address, ...], previous: Picker | None
) -> int:
    """Index into ``ready`` of the first connected address after the one picked last."""
    if not isinstance(previous, RoundRobinPicker) or previous.last is None:
        return 0
    last = previous.ready[previous.last]
    if last not in addresses:
        return (previous.last + 1) % len(ready)
    position: Callable[[Address], int] = {a: i for i, a in enumerate(addresses)}.__getitem__
    after = position(last)
    for index, address in enumerate(ready):
        if position(address) > after:
            return index
    return 0


@hookimpl
def naming_register_balancers(register: Callable[[type[RoundRobin]], None]) -> None:
    register(RoundRobin)
