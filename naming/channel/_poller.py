"""Poller: one thread's worth of connectivity polling for all the subchannels of a channel.

grpcio tells a subscriber about connectivity from a poller thread per channel; a balanced channel
over 10,000 addresses would run 10,000 of them. Instead the channel's own thread reads every
subchannel's state in turn (:meth:`naming.channel._subchannel.Subchannel.poll`, one non-blocking C
call each): a sweep over all of them every :data:`PERIOD` seconds, or ``n * PER_SUBCHANNEL`` for
``n`` subchannels when that is longer, made in chunks of at most :data:`CHUNK` spread evenly over
the sweep. So a change is seen within 20 ms up to 500 subchannels and within 0.4 s at 10,000; the
thread holds the interpreter for well under a millisecond at a time, and spends a few percent of a
core at 10,000 subchannels (each read costs 1 to 2.5 us).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence

from ._subchannel import BaseSubchannel

__all__ = ["CHUNK", "PERIOD", "PER_SUBCHANNEL", "Poller"]

PERIOD = 0.02  # seconds: the shortest sweep
PER_SUBCHANNEL = 40e-6  # seconds of sweep per subchannel beyond PERIOD / PER_SUBCHANNEL of them
CHUNK = 200  # subchannels read in one go


class Poller:
    """Polls the subchannels that ``source()`` lists, a chunk at a time, when :meth:`poll` is called.

    ``source()`` is read once per sweep (subchannels added meanwhile join the next sweep; one
    retired meanwhile ignores its poll). Used by one thread; ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        source: Callable[[], Sequence[BaseSubchannel]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._clock = clock
        self._sweep: Iterator[BaseSubchannel] = iter(())
        self._gap = PERIOD
        self.due = clock()  # when the next chunk is due (time.monotonic() by default)
        self.sweeps = 0  # sweeps started, for diagnostics

    def wait(self) -> float:
        """Seconds until the next chunk is due (0 when it is overdue)."""
        return max(self.due - self._clock(), 0.0)

    def poll(self) -> int:
        """Read the next chunk of subchannels if it is due; how many were read."""
        now = self._clock()
        if now < self.due:
            return 0
        chunk = list(itertools.islice(self._sweep, CHUNK))
        if not chunk:
            self._start_sweep()
            chunk = list(itertools.islice(self._sweep, CHUNK))
        for subchannel in chunk:
            subchannel.poll()
        self.due = now + self._gap
        return len(chunk)

    def _start_sweep(self) -> None:
        polled = [subchannel for subchannel in self._source() if subchannel.polled]
        chunks = max(math.ceil(len(polled) / CHUNK), 1)
        self._gap = max(PERIOD, len(polled) * PER_SUBCHANNEL) / chunks
        self._sweep = iter(polled)
        self.sweeps += 1
