"""least_request: of a few random connected addresses, the one with the fewest calls in flight.

As Envoy's LEAST_REQUEST and grpc-go's ``leastrequest``: ``choice_count`` addresses (2 by default)
are drawn at random and the one with the fewest calls in flight wins, ties to the first drawn. The
counters (:class:`balancers.InFlight`) are kept per address by the balancer, so they survive every
picker rebuild: calls still running when an address joins or leaves keep counting.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from naming.core import Address, Resolver, hookimpl

from ._balancer import PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState
from ._store import InFlight

__all__ = ["LeastRequest", "LeastRequestPicker"]


class LeastRequestPicker(Picker):
    """``choices`` random draws over ``ready``; the pick's put ends its in-flight count."""

    __slots__ = ("_below", "_choices", "ready", "states")

    def __init__(
        self, ready: Sequence[Address], states: Sequence[InFlight], choices: int, rng: random.Random
    ) -> None:
        self.ready = ready
        self.states = states
        self._choices = choices
        self._below = rng.randrange

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        n = len(self.ready)
        states = self.states
        best = self._below(n)
        fewest = states[best].count
        for _ in range(self._choices - 1):
            other = self._below(n)
            count = states[other].count
            if count < fewest:
                best, fewest = other, count
        return self.ready[best], states[best].begin()


class LeastRequest(PickerBalancer):
    """Each RPC goes to the least loaded of ``choice_count`` random connected addresses.

    ``choice_count`` is an int >= 2 (ValueError otherwise); ``seed`` fixes the draws.
    """

    name = "least_request"

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        choice_count: int = 2,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        if type(choice_count) is not int or choice_count < 2:
            raise ValueError(
                f"least_request: choice_count must be an int >= 2, not {choice_count!r}"
            )
        super().__init__(resolver, **options)
        self.choice_count = choice_count
        self._rng = random.Random(seed)

    def new_address_state(self, address: Address) -> InFlight:
        return InFlight()

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return LeastRequestPicker(state.ready, state.states, self.choice_count, self._rng)


@hookimpl
def naming_register_balancers(register: Callable[[type[LeastRequest]], None]) -> None:
    register(LeastRequest)
