"""p4: what 10,000 endpoints cost, against 10 endpoints and against the bare etcd client.

``p4_update_cost_ratio_10000_vs_10`` (in process, no etcd): a ``SnapshotWatcher`` feeds a started
``RoundRobin`` whose addresses are all up. One update is the churn a deploy makes: the watcher loses
one address and gains another (one DELETE, one ADD); the balancer's watch thread takes them and
applies them; the channel marks the new address up, as it would once connected, and picks once.
The time runs from the watcher's ``discard()`` to the end of that first ``get()``: it includes the
hand-off to the balancer's thread and the lazy picker snapshot, which the first pick after a change
pays and a channel pays at once (it picks right after). "Applied" is seen without touching the
balancer: the watch thread calling ``next()`` again means it finished the previous batch. The
channel's own read of the notified list is not included (that copy is O(n) by the legacy contract:
the list is a full one); ``p4_update_cost_with_notify_read_ratio`` reports the figure with it.

``p4_initial_resolve_ratio_10000`` (a private etcd with 10,000 records in our format, metadata
``{"zone": ...}`` in one of 3 zones): from ``naming.resolve()`` to the return of its first ``next()``
(connect, snapshot, decode, the whole set as ADDs), over a fresh bare ``etcd3`` client's
``get_prefix`` of the same prefix, read to the end. The decoder freezes each distinct metadata once,
so ``p4_initial_resolve_unique_metadata_ratio`` reports the same with an ``instance`` of its own in
every record's metadata: the case where nothing is shared.

Rounds are interleaved (A B A B ...) and the figure is the median of per-round ratios.

The same scale through ``naming.dial`` (``p4_channel_*``) is measured by :mod:`bench.p4_channel`.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import naming
from backends._etcd_records import encode_record
from balancers import RoundRobin
from naming.testing.etcd import EtcdServer

from . import p4_channel
from ._stats import interleave, ratios, summarize

__all__ = ["run"]

WAIT = 10.0  # seconds for what must happen
BIG, SMALL = 10_000, 10
TXN_OPS = 100  # puts per transaction when loading (etcd allows 128)


def _address(index: int, unique: bool = False) -> naming.Address:
    """The index-th test address: metadata ``{"zone": ...}`` in one of 3 zones, plus an
    ``instance`` of its own when ``unique``."""
    host = f"10.{index // 62500 % 250}.{index // 250 % 250}.{index % 250 + 1}"
    metadata = {"zone": f"z{index % 3}"}
    if unique:
        metadata["instance"] = f"i-{index:05d}"
    return naming.Address(f"{host}:50051", metadata)


# -- update cost -----------------------------------------------------------------------------------


class _TrackedWatcher(naming.SnapshotWatcher):
    """A SnapshotWatcher that knows how many updates its consumer has finished with.

    The consumer (the balancer's watch thread) calls ``next()`` again only once it has applied
    every update the previous call returned.
    """

    def __init__(self, addresses: list[naming.Address]) -> None:
        super().__init__(addresses, name="p4")
        self._progress = threading.Condition()
        self._returned = 0
        self.applied = 0

    def next(self, timeout: float | None = None) -> list[naming.Update]:
        with self._progress:
            self.applied = self._returned
            self._progress.notify_all()
        updates = super().next(timeout)
        with self._progress:
            self._returned += len(updates)
        return updates

    def wait_applied(self, count: int) -> None:
        with self._progress:
            if not self._progress.wait_for(lambda: self.applied >= count, WAIT):
                raise RuntimeError(f"p4: the balancer did not apply {count} updates in {WAIT}s")


class _Fixed(naming.Resolver):
    def __init__(self, watcher: naming.Watcher) -> None:
        self._watcher = watcher

    def resolve(self, target: naming.Target | str) -> naming.Watcher:
        return self._watcher


class _Churn:
    """A started RoundRobin over ``size`` addresses, all up, and the watcher feeding it."""

    def __init__(self, size: int) -> None:
        self.live = deque(_address(i) for i in range(size))
        self.watcher = _TrackedWatcher(list(self.live))
        self.balancer = RoundRobin(_Fixed(self.watcher))
        self.balancer.start("p4")
        self.watcher.wait_applied(size)
        for address in self.live:
            self.balancer.up(address)
        self.balancer.get()
        self._next = size
        self._expected = size

    def update(self, new: naming.Address, read_notify: bool) -> None:
        """One DELETE + one ADD (``new``), applied, the new address up, one pick."""
        old = self.live.popleft()
        self.live.append(new)
        self._expected += 2
        self.watcher.discard(old)
        self.watcher.add(new)
        self.watcher.wait_applied(self._expected)
        if read_notify:
            notifications = self.balancer.notify()
            assert notifications is not None
            notifications.get(WAIT)
        self.balancer.up(new)
        self.balancer.get()

    def measure(self, updates: int, read_notify: bool) -> Callable[[], float]:
        def measure() -> float:
            fresh = [_address(self._next + i) for i in range(updates)]
            self._next += updates
            started = time.perf_counter()
            for new in fresh:
                self.update(new, read_notify)
            return (time.perf_counter() - started) / updates

        return measure

    def close(self) -> None:
        self.balancer.close()


def update_cost(rounds: int, updates: int) -> dict[str, float]:
    small, big = _Churn(SMALL), _Churn(BIG)
    try:
        for churn in (small, big):  # warm up: first picks, caches, the thread's first wake-ups
            churn.measure(updates, read_notify=False)()
        plain_small, plain_big, read_small, read_big = interleave(
            rounds,
            small.measure(updates, read_notify=False),
            big.measure(updates, read_notify=False),
            small.measure(updates, read_notify=True),
            big.measure(updates, read_notify=True),
        )
    finally:
        small.close()
        big.close()
    plain, read = ratios(plain_big, plain_small), ratios(read_big, read_small)
    return {
        "p4_update_cost_ratio_10000_vs_10": plain.median,
        "p4_update_cost_ratio_10000_vs_10_spread": plain.spread,
        "p4_update_cost_with_notify_read_ratio": read.median,
        "p4_update_cost_with_notify_read_ratio_spread": read.spread,
        "p4_update_cost_10_us": summarize(plain_small).median * 1e6,
        "p4_update_cost_10000_us": summarize(plain_big).median * 1e6,
    }


# -- initial resolve -------------------------------------------------------------------------------


def _load(client: Any, keys: str, count: int, unique: bool) -> None:
    """``count`` records under ``keys``, in transactions of TXN_OPS puts."""
    for first in range(0, count, TXN_OPS):
        puts = [
            client.transactions.put(f"{keys}{i:05d}", encode_record(_address(i, unique)))
            for i in range(first, min(first + TXN_OPS, count))
        ]
        client.transaction(compare=[], success=puts, failure=[])


def _first_next(target: str) -> float:
    """Seconds from ``naming.resolve(target)`` to the return of its first ``next()``."""
    gc.collect()  # each side pays for its own garbage, not for the other's
    started = time.perf_counter()
    watcher = naming.resolve(target)
    try:
        updates = watcher.next(WAIT)
        elapsed = time.perf_counter() - started
    finally:
        watcher.close()
    if len(updates) != BIG:
        raise RuntimeError(f"p4: the first next() gave {len(updates)} updates, not {BIG}")
    return elapsed


def _get_prefix(etcd: EtcdServer, keys: str) -> float:
    """Seconds for a new bare etcd3 client to read every record under ``keys``."""
    import etcd3

    gc.collect()
    started = time.perf_counter()
    client = etcd3.client(host=etcd.host, port=etcd.port)
    try:
        records = list(client.get_prefix(keys))
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    if len(records) != BIG:
        raise RuntimeError(f"p4: get_prefix gave {len(records)} records, not {BIG}")
    return elapsed


def initial_resolve(rounds: int) -> dict[str, float]:
    """The figure for records in 3 zones, and for records whose metadata are all different."""
    import etcd3

    with EtcdServer(name="p4") as etcd:
        etcd.start()
        loader = etcd3.client(host=etcd.host, port=etcd.port)
        try:
            _load(loader, "/bench-p4/svc/", BIG, unique=False)
            _load(loader, "/bench-p4u/svc/", BIG, unique=True)
        finally:
            loader.close()
        measures: tuple[Callable[[], float], ...] = (
            lambda: _first_next(f"etcd://{etcd.endpoint}/svc?prefix=/bench-p4"),
            lambda: _get_prefix(etcd, "/bench-p4/svc/"),
            lambda: _first_next(f"etcd://{etcd.endpoint}/svc?prefix=/bench-p4u"),
            lambda: _get_prefix(etcd, "/bench-p4u/svc/"),
        )
        for measure in measures:  # warm up: plugin loading, imports, the server's caches
            measure()
        mine, theirs, mine_unique, theirs_unique = interleave(rounds, *measures)
    ratio, unique = ratios(mine, theirs), ratios(mine_unique, theirs_unique)
    return {
        "p4_initial_resolve_ratio_10000": ratio.median,
        "p4_initial_resolve_ratio_10000_spread": ratio.spread,
        "p4_initial_resolve_unique_metadata_ratio": unique.median,
        "p4_initial_resolve_unique_metadata_ratio_spread": unique.spread,
        "p4_initial_resolve_ms": summarize(mine).median * 1000,
        "p4_initial_get_prefix_ms": summarize(theirs).median * 1000,
    }


def run(quick: bool) -> dict[str, float]:
    results = update_cost(*((7, 200) if quick else (21, 500)))
    results.update(initial_resolve(7 if quick else 31))
    results.update(p4_channel.run(quick))
    return results
