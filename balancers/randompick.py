"""random: every RPC goes to a connected address chosen uniformly at random."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from naming.core import Address, Resolver, hookimpl

from ._balancer import PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState

__all__ = ["Random", "RandomPicker"]


class RandomPicker(Picker):
    """A uniform choice over ``ready``; ``random.Random`` methods are atomic under the GIL."""

    __slots__ = ("_below", "ready")

    def __init__(self, ready: Sequence[Address], rng: random.Random) -> None:
        self.ready = ready
        self._below = rng.randrange

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        return self.ready[self._below(len(self.ready))], None


class Random(PickerBalancer):
    """Each RPC goes to one of the connected addresses, each with the same chance.

    ``seed`` fixes the sequence of choices (for tests and benchmarks); None seeds from the system.
    """

    name = "random"

    def __init__(
        self, resolver: Resolver | None = None, *, seed: int | None = None, **options: Any
    ) -> None:
        super().__init__(resolver, **options)
        self._rng = random.Random(seed)

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return RandomPicker(state.ready, self._rng)


@hookimpl
def naming_register_balancers(register: Callable[[type[Random]], None]) -> None:
    register(Random)
