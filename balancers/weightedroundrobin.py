"""weighted_round_robin: a smooth weighted rotation (earliest deadline first, as Envoy does).

Each connected address with weight w is due at times (k - 1/2) / w for k = 1, 2, ...; every RPC
goes to the address due first (ties to the earlier one in the list). Over any W picks in a row
starting at a multiple of W (W the sum of the weights), an address of weight w gets exactly w, and
its picks are spread out rather than in runs: weights 1, 2 and 7 for a, b and c give the round
``c c b c a c c b c c`` again and again (at most four c's in a row, across two rounds).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence

from naming.core import Address, hookimpl

from ._balancer import PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState
from ._weight import address_weight

__all__ = ["WeightedRoundRobin", "WeightedRoundRobinPicker"]


class WeightedRoundRobinPicker(Picker):
    """The earliest-deadline-first schedule of ``ready``; a pick costs O(log n) under a short lock."""

    __slots__ = ("_heap", "_lock", "ready", "weights")

    def __init__(self, ready: Sequence[Address], weights: Sequence[int]) -> None:
        self.ready = ready
        self.weights = weights
        self._lock = threading.Lock()
        # (deadline, index, picks so far): an address's k-th pick is due at (k - 0.5) / weight
        self._heap = [(0.5 / w, i, 0) for i, w in enumerate(weights)]
        heapq.heapify(self._heap)

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        with self._lock:
            _, index, picks = self._heap[0]
            picks += 1
            heapq.heapreplace(self._heap, ((picks + 0.5) / self.weights[index], index, picks))
        return self.ready[index], None


class WeightedRoundRobin(PickerBalancer):
    """RPCs go to the connected addresses in proportion to ``metadata["weight"]``, interleaved.

    A weight is an int >= 1 or a numeric string; a missing weight counts as 1, a bad one as 1 with
    one warning for that address. A weight change comes as a new address (metadata is part of an
    address's identity), so it rebuilds the picker, and the schedule starts over.
    """

    name = "weighted_round_robin"

    def new_address_state(self, address: Address) -> int:
        return address_weight(address, self._log, self.name)

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return WeightedRoundRobinPicker(state.ready, tuple(state.states))


@hookimpl
def naming_register_balancers(register: Callable[[type[WeightedRoundRobin]], None]) -> None:
    register(WeightedRoundRobin)
