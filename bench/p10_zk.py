"""p10: the ZooKeeper backend against the bare kazoo client, on a private ZooKeeper.

* ``p3_zk_propagation_ratio_p50`` / ``_p99``: a write (a child created, then deleted) until ours
  (``naming.resolve`` of a ``zk://`` target, ``next()`` consumed in a thread) has it, divided by the
  same write reaching a bare kazoo ``ChildrenWatch`` callback watching the same node. A third
  client writes, one write at a time; the next write waits until both observers saw this one.
  Per round a ratio of percentiles; the figure is the median over rounds.
* ``p4_zk_initial_resolve_ratio_10000``: with 10,000 children, the first ``next()`` of a new
  watcher (session included), divided by a new bare kazoo client's ``start()``, ``get_children``
  and one asynchronous ``get`` per child, all issued before the first result is read. Median of
  the per-round ratios, the two measured in turn.

``--quick`` (the smoke test) writes fewer times and reads 1,000 children once: the figures then
only show that the section runs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import naming
from naming.core import encode_record
from naming.testing.zookeeper import ZkServer

from ._stats import percentile, summarize

__all__ = ["run"]

ROOT = "/bench-p10"
WAIT = 10.0
WARMUP = 20


def _addr(index: int) -> str:
    return f"10.{index // 62500}.{index // 250 % 250}.{index % 250 + 1}:50051"


def _index(addr: str) -> int:
    parts = [int(p) for p in addr.split(":")[0].split(".")]
    return parts[1] * 62500 + parts[2] * 250 + parts[3] - 1


class _Arrivals:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.seen: dict[str, dict[str, float]] = {"ours": {}, "bare": {}}

    def record(self, observer: str, labels: list[str], when: float) -> None:
        with self._cond:
            for label in labels:
                self.seen[observer].setdefault(label, when)
            self._cond.notify_all()

    def wait(self, label: str) -> tuple[float, float]:
        with self._cond:
            if not self._cond.wait_for(
                lambda: label in self.seen["ours"] and label in self.seen["bare"], WAIT
            ):
                raise RuntimeError(f"p10: write {label} did not reach both watchers in {WAIT}s")
            return self.seen["ours"].pop(label), self.seen["bare"].pop(label)


def _consume(watcher: naming.Watcher, arrivals: _Arrivals, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            updates = watcher.next(0.2)
        except naming.WatcherClosedError:
            return
        when = time.perf_counter()
        if updates:
            labels = [
                f"{'put' if u.op is naming.Operation.ADD else 'del'}-{_index(u.addr)}"
                for u in updates
            ]
            arrivals.record("ours", labels, when)


def _client(endpoint: str) -> Any:
    from kazoo.client import KazooClient

    client = KazooClient(hosts=endpoint, timeout=10.0)
    client.start(timeout=WAIT)
    return client


def _propagation(zk: ZkServer, quick: bool) -> dict[str, float]:
    from kazoo.recipe.watchers import ChildrenWatch

    rounds, writes = (2, 100) if quick else (12, 600)
    path = f"{ROOT}/prop/svc"
    arrivals = _Arrivals()
    stop = threading.Event()
    writer, bare = _client(zk.endpoint), _client(zk.endpoint)
    writer.ensure_path(path)
    known: set[str] = set()

    def bare_callback(children: list[str]) -> None:
        when = time.perf_counter()
        now = set(children)
        labels = [f"put-{c}" for c in now - known] + [f"del-{c}" for c in known - now]
        known.clear()
        known.update(now)
        arrivals.record("bare", labels, when)

    watcher = naming.resolve(f"zk://{zk.endpoint}/svc?root={ROOT}/prop")
    consumer = threading.Thread(target=_consume, args=(watcher, arrivals, stop), daemon=True)
    ratio_p50: list[float] = []
    ratio_p99: list[float] = []
    absolute: dict[str, list[float]] = {}
    try:
        ChildrenWatch(bare, path, bare_callback)
        consumer.start()

        def one_round(first: int, count: int) -> tuple[list[float], list[float]]:
            ours: list[float] = []
            theirs: list[float] = []
            for step in range(count):
                index = first + step // 2
                node = f"{path}/{index}"
                started = time.perf_counter()
                if step % 2 == 0:
                    writer.create(node, encode_record(naming.Address(_addr(index))).encode())
                    a, b = arrivals.wait(f"put-{index}")
                else:
                    writer.delete(node)
                    a, b = arrivals.wait(f"del-{index}")
                ours.append(a - started)
                theirs.append(b - started)
            return ours, theirs

        one_round(0, WARMUP)
        for number in range(rounds):
            ours, theirs = one_round((number + 1) * writes, writes)
            row = {
                "ours_p50": percentile(ours, 0.5),
                "bare_p50": percentile(theirs, 0.5),
                "ours_p99": percentile(ours, 0.99),
                "bare_p99": percentile(theirs, 0.99),
            }
            for name, value in row.items():
                absolute.setdefault(name, []).append(value * 1000)
            ratio_p50.append(row["ours_p50"] / row["bare_p50"])
            ratio_p99.append(row["ours_p99"] / row["bare_p99"])
    finally:
        stop.set()
        watcher.close()
        consumer.join(WAIT)
        for client in (bare, writer):
            client.stop()
            client.close()
    p50, p99 = summarize(ratio_p50), summarize(ratio_p99)
    results = {
        "p3_zk_propagation_ratio_p50": p50.median,
        "p3_zk_propagation_ratio_p50_spread": p50.spread,
        "p3_zk_propagation_ratio_p99": p99.median,
        "p3_zk_propagation_ratio_p99_spread": p99.spread,
    }
    for name, values in absolute.items():
        results[f"p3_zk_{name}_ms"] = summarize(values).median
    return results


def _initial(zk: ZkServer, quick: bool) -> dict[str, float]:
    # --quick is a smoke run: 1,000 children, one round (the figure keeps its name)
    rounds, count = (1, 1_000) if quick else (7, 10_000)
    path = f"{ROOT}/initial/svc"
    writer = _client(zk.endpoint)
    try:
        writer.ensure_path(path)
        pending = [
            writer.create_async(
                f"{path}/{i}",
                encode_record(naming.Address(_addr(i), {"zone": f"z{i % 3}"})).encode(),
            )
            for i in range(count)
        ]
        for result in pending:
            result.get(timeout=WAIT * 6)
    finally:
        writer.stop()
        writer.close()
    target = f"zk://{zk.endpoint}/svc?root={ROOT}/initial"

    def ours() -> float:
        started = time.perf_counter()
        watcher = naming.resolve(target)
        try:
            got = watcher.next(timeout=WAIT * 6)
            took = time.perf_counter() - started
        finally:
            watcher.close()
        if len(got) != count:
            raise RuntimeError(f"p10: the first next() had {len(got)} of {count} addresses")
        return took

    def bare() -> float:
        from kazoo.client import KazooClient

        started = time.perf_counter()
        client = KazooClient(hosts=zk.endpoint, timeout=10.0)
        client.start(timeout=WAIT)
        try:
            children = client.get_children(path)
            results = [client.get_async(f"{path}/{c}") for c in children]
            values = [r.get(timeout=WAIT * 6)[0] for r in results]
            took = time.perf_counter() - started
        finally:
            client.stop()
            client.close()
        if len(values) != count:
            raise RuntimeError(f"p10: the bare read had {len(values)} of {count} children")
        return took

    if not quick:
        ours()  # warm up both paths once
        bare()
    ratios: list[float] = []
    ours_s: list[float] = []
    bare_s: list[float] = []
    for _ in range(rounds):
        a, b = ours(), bare()
        ours_s.append(a)
        bare_s.append(b)
        ratios.append(a / b)
    summary = summarize(ratios)
    return {
        "p4_zk_initial_resolve_ratio_10000": summary.median,
        "p4_zk_initial_resolve_ratio_10000_spread": summary.spread,
        "p4_zk_initial_ours_10000_s": summarize(ours_s).median,
        "p4_zk_initial_bare_10000_s": summarize(bare_s).median,
    }


def run(quick: bool) -> dict[str, float]:
    with ZkServer(name="p10") as zk:
        zk.start()
        results = _propagation(zk, quick)
        results.update(_initial(zk, quick))
    return results
