"""Interleaved rounds, medians and spreads."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Summary", "interleave", "percentile", "ratios", "summarize", "timed"]


@dataclass(frozen=True)
class Summary:
    """The median of some samples and their spread: (p75 - p25) / median, 0 when alike."""

    median: float
    spread: float
    samples: int


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: Sequence[float]) -> Summary:
    median = statistics.median(values)
    spread = (percentile(values, 0.75) - percentile(values, 0.25)) / median if median else 0.0
    return Summary(median, spread, len(values))


def interleave(rounds: int, *measures: Callable[[], float]) -> list[list[float]]:
    """Run the measures in turn, ``rounds`` times (A B C A B C ...); one list of results each."""
    results: list[list[float]] = [[] for _ in measures]
    for _ in range(rounds):
        for index, measure in enumerate(measures):
            results[index].append(measure())
    return results


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Summary:
    """The per-round ratios (round i of A over round i of B), summarized."""
    return summarize([a / b for a, b in zip(numerators, denominators, strict=True)])


def timed(function: Callable[[], object], repeat: int = 1) -> float:
    """Seconds per call of ``function``, over ``repeat`` calls."""
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) / repeat
