"""Jittered exponential backoff for the reconnect, re-watch and re-register loops of backends."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each scaled by a random 0.8-1.2.

    ``next()`` never returns more than ``maximum``; ``reset()`` after a success starts again from
    ``initial``. ``rng`` is injectable so tests can pin the jitter. Not thread-safe: one loop owns
    one Backoff.
    """

    def __init__(
        self, initial: float = 0.1, maximum: float = 3.0, rng: random.Random | None = None
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff: need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._rng = rng or random.Random()
        self._next = initial

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long (before jitter)."""
        delay = self._next * self._rng.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self.maximum)
        return min(delay, self.maximum)

    def reset(self) -> None:
        """Start again from ``initial``."""
        self._next = self.initial

    def __repr__(self) -> str:
        return f"<Backoff {self.initial}s..{self.maximum}s, next {self._next}s>"
