"""p4 through the channel: ``naming.dial`` over 10, 1,000 and 10,000 addresses (manual backend).

The addresses are ports of 127.0.0.1 that nobody listens on (checked in /proc/net/tcp when it
exists), below the kernel's ephemeral range: every subchannel tries to connect, is refused, and
goes to TRANSIENT_FAILURE; nothing leaves the machine. The channels ask grpc for a long reconnect
backoff, so that grpc's own reconnects (which a real deployment spreads over time) do not drown
what is measured: the channel's bookkeeping.

* ``p4_channel_initial_N``: seconds from ``naming.dial()`` to the moment its N subchannels exist
  (a grpc channel made for each; ``BalancedChannel.wait_for_subchannels``), for N = 1,000 and
  10,000. ``p4_channel_initial_ratio_10000_vs_1000`` is the second over the first: 10 is linear.
* ``p4_channel_update_ratio_10000_vs_10``: one address added, until its subchannel exists, and one
  removed, until its subchannel is gone from the channel's list; the mean of one op over a round,
  10,000 present against 10 present, in interleaved rounds (both channels open throughout). It
  includes the manual resolver, the balancer's watch thread, the hand-over of the change through
  ``Notifications.changes()`` and the channel's thread; ``p4_channel_update_N_us`` are the times.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import naming
from backends.manual import ManualResolver

from ._stats import interleave, ratios, summarize

__all__ = ["run"]

WAIT = 60.0  # seconds for what must happen (10,000 subchannels included)
BIG, MIDDLE, SMALL = 10_000, 1_000, 10
FIRST_PORT, LAST_PORT = 20_000, 32_767  # below Linux's ephemeral ports (32768-60999)
OPTIONS = (  # quiet reconnects: one attempt now, the next after 30 s or more
    ("grpc.initial_reconnect_backoff_ms", 30_000),
    ("grpc.min_reconnect_backoff_ms", 30_000),
)


def _listening() -> set[int]:
    """The local TCP ports someone listens on (from /proc; empty where there is none)."""
    ports: set[int] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _free_addresses() -> Iterator[naming.Address]:
    """Addresses 127.0.0.1:PORT that nobody listens on now, each once."""
    taken = _listening()
    for port in range(FIRST_PORT, LAST_PORT + 1):
        if port not in taken:
            yield naming.Address(f"127.0.0.1:{port}")
    raise RuntimeError(f"p4: no free port left in {FIRST_PORT}-{LAST_PORT}")


def _listed(address: naming.Address, listed: bool) -> Callable[[Mapping[Any, Any]], bool]:
    """The predicate: ``address`` has a subchannel (``listed``) or has none."""
    return lambda subchannels: (address in subchannels) is listed


class _Dialled:
    """A manual resolver holding ``size`` addresses and ``naming.dial`` over it; ``initial`` is the
    time until every subchannel existed."""

    def __init__(self, size: int, addresses: Iterator[naming.Address]) -> None:
        self._addresses = addresses
        self.live = [next(addresses) for _ in range(size)]
        name = f"p4-{size}-{uuid.uuid4().hex[:8]}"
        self.resolver = ManualResolver(self.live, name=name)
        gc.collect()
        started = time.perf_counter()
        self.channel: Any = naming.dial(f"manual:///{name}", options=OPTIONS)
        self._wait(lambda subchannels: len(subchannels) == size, f"{size} subchannels")
        self.initial = time.perf_counter() - started

    def _wait(self, predicate: Callable[[Any], bool], what: str) -> None:
        if not self.channel.wait_for_subchannels(predicate, WAIT):
            raise RuntimeError(f"p4: the channel did not reach {what} within {WAIT}s")

    def measure(self, ops: int) -> Callable[[], float]:
        """A measure: ``ops`` adds and ``ops`` removes, in turn; seconds per op."""

        def measure() -> float:
            fresh = [next(self._addresses) for _ in range(ops)]
            started = time.perf_counter()
            for address in fresh:
                self.resolver.update([naming.Update.add(address)])
                self._wait(_listed(address, True), "an address added")
                self.resolver.update([naming.Update.delete(address)])
                self._wait(_listed(address, False), "an address removed")
            return (time.perf_counter() - started) / (2 * ops)

        return measure

    def close(self) -> None:
        self.channel.close()
        self.resolver.close()


def run(quick: bool) -> dict[str, float]:
    rounds, ops = (5, 20) if quick else (15, 40)
    made: list[_Dialled] = []
    addresses = _free_addresses()
    try:
        small = _Dialled(SMALL, addresses)  # first: it pays for loading plugins and grpc
        made.append(small)
        middle = _Dialled(MIDDLE, addresses)
        made.append(middle)
        initial_middle = middle.initial
        middle.close()
        made.remove(middle)
        big = _Dialled(BIG, addresses)
        made.append(big)
        for dialled in (small, big):  # warm up: first updates, caches, the threads' wake-ups
            dialled.measure(ops)()
        # Each measure takes fresh ports: 2 * (rounds + 1) * ops of them in all.
        small_times, big_times = interleave(rounds, small.measure(ops), big.measure(ops))
        initial_big = big.initial
    finally:
        for dialled in made:
            dialled.close()
    update = ratios(big_times, small_times)
    return {
        "p4_channel_update_ratio_10000_vs_10": update.median,
        "p4_channel_update_ratio_10000_vs_10_spread": update.spread,
        "p4_channel_update_10_us": summarize(small_times).median * 1e6,
        "p4_channel_update_10000_us": summarize(big_times).median * 1e6,
        "p4_channel_initial_1000": initial_middle,
        "p4_channel_initial_10000": initial_big,
        "p4_channel_initial_ratio_10000_vs_1000": initial_big / initial_middle,
    }
