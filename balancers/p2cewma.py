"""p2c_ewma: of two random connected addresses, the one with the lower peak-EWMA latency x load.

Each address keeps a cost: its peak-EWMA latency (Finagle, linkerd, go-zero). A latency above the
cost replaces it at once; otherwise the cost moves toward it with weight ``1 - exp(-dt/tau)``, and
it also decays toward zero while no sample comes, so a server that was slow gets tried again about
``tau`` later. A failed call counts as ``penalty`` seconds. Two distinct addresses are drawn and
the one with the lower ``cost * (in flight + 1)`` wins.

An address with no sample yet is cold: it takes one probe call at a time (claimed atomically),
and loses every draw while its probe runs, rather than winning them all as go-zero's new nodes
do. The statistics belong to the address, not the picker: they survive rebuilds, and a slow server
stays known as slow when another joins.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from naming.core import Address, Resolver, hookimpl

from ._balancer import DoneInfo, PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState
from ._store import InFlight

__all__ = ["AddressStats", "P2CEwma", "P2CEwmaPicker"]

# Codes that say the server failed the call, not that it answered an application error.
_FAILURES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED", "CANCELLED"}
)


class AddressStats:
    """One address's calls in flight and peak-EWMA cost (seconds). Samples take a short lock."""

    __slots__ = ("_clock", "_lock", "_probe", "_stamp", "_tau", "cost", "in_flight", "samples")

    def __init__(self, tau: float, clock: Callable[[], float]) -> None:
        self.in_flight = InFlight()
        self.cost = 0.0
        self.samples = 0
        self._stamp = clock()
        self._tau = tau
        self._clock = clock
        self._lock = threading.Lock()
        self._probe = threading.Lock()  # held while a cold address's one probe runs

    def current(self, now: float) -> float:
        """The cost as of ``now``, decayed since the last sample."""
        return self.cost * math.exp(-max(0.0, now - self._stamp) / self._tau)

    def observe(self, latency: float) -> None:
        """Add one sample: a peak replaces the cost, anything else is averaged in."""
        with self._lock:
            now = self._clock()
            cost = self.current(now)
            if latency > cost:
                self.cost = latency
            else:
                w = math.exp(-max(0.0, now - self._stamp) / self._tau)
                self.cost = cost * w + latency * (1.0 - w)
            self._stamp = now
            self.samples += 1

    def claim_probe(self) -> bool:
        """For a cold address: take its one probe slot; False when a probe is already running."""
        return self._probe.acquire(blocking=False)

    def release_probe(self) -> None:
        if self._probe.locked():
            self._probe.release()


class _Put:
    """Ends the call's in-flight count, records its latency, frees a cold address's probe slot."""

    __slots__ = ("_ended", "_penalty", "_probe", "_stats")

    def __init__(self, stats: AddressStats, penalty: float, probe: bool) -> None:
        self._stats = stats
        self._penalty = penalty
        self._probe = probe
        self._ended = stats.in_flight.begin()

    def __call__(self, info: DoneInfo | None = None) -> None:
        if info is not None:
            code = getattr(info.code, "name", None)
            failed = code in _FAILURES or (code is None and info.error is not None)
            self._stats.observe(max(info.latency, self._penalty) if failed else info.latency)
        self._end()

    def abandon(self) -> None:
        self._end()

    def _end(self) -> None:
        self._ended()  # TrackedPut: only the first end counts
        if self._probe:
            self._probe = False
            self._stats.release_probe()


class P2CEwmaPicker(Picker):
    """Two distinct random draws over ``ready``, compared on ``cost * (in flight + 1)``."""

    __slots__ = ("_below", "_clock", "_penalty", "ready", "states")

    def __init__(
        self,
        ready: Sequence[Address],
        states: Sequence[AddressStats],
        rng: random.Random,
        penalty: float,
        clock: Callable[[], float],
    ) -> None:
        self.ready = ready
        self.states = states
        self._below = rng.randrange
        self._penalty = penalty
        self._clock = clock

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        n = len(self.ready)
        if n == 1:
            return self._take(0)
        i = self._below(n)
        j = self._below(n - 1)
        j += j >= i
        now = self._clock()
        a, b = self.states[i], self.states[j]
        if not a.samples or not b.samples:  # a cold one: probe it if nobody is
            for index, stats in ((i, a), (j, b)):
                if not stats.samples and stats.claim_probe():
                    return self._take(index, probe=True)
            if a.samples or b.samples:  # the cold one is being probed: the warm one wins
                return self._take(i if a.samples else j)
            first = a.in_flight.count <= b.in_flight.count
            return self._take(i if first else j)
        score_a = a.current(now) * (a.in_flight.count + 1)
        score_b = b.current(now) * (b.in_flight.count + 1)
        return self._take(i if score_a <= score_b else j)

    def _take(self, index: int, probe: bool = False) -> tuple[Address, Put | None]:
        return self.ready[index], _Put(self.states[index], self._penalty, probe)


class P2CEwma(PickerBalancer):
    """Each RPC goes to the faster-and-less-loaded of two random connected addresses.

    ``tau`` (seconds, > 0) is the decay time of the latency average; ``penalty`` (seconds, >= 0)
    the latency a failed call counts as; ``seed`` fixes the draws; ``clock`` is the monotonic
    clock the average is timed with.
    """

    name = "p2c_ewma"

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        tau: float = 1.0,
        penalty: float = 1.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        _check_seconds("tau", tau, zero=False)
        _check_seconds("penalty", penalty, zero=True)
        super().__init__(resolver, **options)
        self.tau = float(tau)
        self.penalty = float(penalty)
        self._rng = random.Random(seed)
        self._clock = clock

    def new_address_state(self, address: Address) -> AddressStats:
        return AddressStats(self.tau, self._clock)

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return P2CEwmaPicker(state.ready, state.states, self._rng, self.penalty, self._clock)


def _check_seconds(option: str, value: object, *, zero: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):  # type: ignore[operator]
        low = ">= 0" if zero else "> 0"
        raise ValueError(f"p2c_ewma: {option} must be a finite number of seconds {low}: {value!r}")


@hookimpl
def naming_register_balancers(register: Callable[[type[P2CEwma]], None]) -> None:
    register(P2CEwma)
