"""p3: how long an etcd change takes to come out of ``Watcher.next()``, against the bare client.

A private etcd. Two observers watch one prefix at the same time: ours (``naming.resolve`` of an
``etcd://`` target, its ``next()`` consumed in a thread) and the bare ``etcd3`` client's own watch
callback (``add_watch_prefix_callback``). A third, bare client makes the writes, one at a time: a put
of a new record, then its delete, and so on. Each write is timed from just before the write call to
the moment each observer has it; the next write waits until both have seen this one, so every write
is measured by both and no batching blurs the figure.

Per round: p50 of ours / p50 of the bare callback's, and p99 / p99 (a ratio of percentiles: the
question is how much later the typical and the slow update arrive, not the mean of per-write
ratios, which a few microsecond-scale coincidences would dominate). The figure is the median over
rounds. The absolute percentiles are reported too (``p3_*_ms``), medians over rounds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import naming
from backends._etcd_records import encode_record
from naming.testing.etcd import EtcdServer

from ._stats import percentile, summarize

__all__ = ["run"]

PREFIX = "/bench-p3"
SERVICE = "svc"
KEYS = f"{PREFIX}/{SERVICE}/"
WAIT = 10.0  # seconds for what must happen
WARMUP = 20  # writes before the measured ones


class _Arrivals:
    """When each observer saw each write: ``seen[observer][label] = perf_counter()``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.seen: dict[str, dict[str, float]] = {"ours": {}, "bare": {}}

    def record(self, observer: str, labels: list[str], when: float) -> None:
        with self._cond:
            for label in labels:
                self.seen[observer].setdefault(label, when)
            self._cond.notify_all()

    def wait(self, label: str) -> tuple[float, float]:
        """The times at which ours and the bare watch saw ``label``; RuntimeError after WAIT."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: label in self.seen["ours"] and label in self.seen["bare"], WAIT
            )
            if not done:
                raise RuntimeError(f"p3: write {label} did not reach both watchers in {WAIT}s")
            return self.seen["ours"].pop(label), self.seen["bare"].pop(label)


def _label(op: str, index: int) -> str:
    return f"{op}-{index}"


def _addr(index: int) -> str:
    return f"10.{index // 62500}.{index // 250 % 250}.{index % 250 + 1}:50051"


def _index(addr: str) -> int:
    parts = [int(p) for p in addr.split(":")[0].split(".")]
    return parts[1] * 62500 + parts[2] * 250 + parts[3] - 1


def _consume(watcher: naming.Watcher, arrivals: _Arrivals, stop: threading.Event) -> None:
    """Our side: every update that next() returns, stamped the moment next() returns."""
    while not stop.is_set():
        try:
            updates = watcher.next(0.2)
        except naming.WatcherClosedError:
            return
        when = time.perf_counter()
        if updates:
            labels = [
                _label("put" if u.op is naming.Operation.ADD else "del", _index(u.addr))
                for u in updates
            ]
            arrivals.record("ours", labels, when)


def _bare_callback(arrivals: _Arrivals) -> Any:
    import etcd3

    def callback(response: Any) -> None:
        when = time.perf_counter()
        if isinstance(response, Exception):
            return
        labels = []
        for event in response.events:
            op = "put" if isinstance(event, etcd3.events.PutEvent) else "del"
            labels.append(_label(op, int(event.key.decode().rpartition("/")[2])))
        arrivals.record("bare", labels, when)

    return callback


def _write(client: Any, arrivals: _Arrivals, index: int, op: str) -> tuple[float, float]:
    """One write; the seconds until ours and the bare watch had it."""
    key = f"{KEYS}{index}"
    if op == "put":
        value = encode_record(naming.Address(_addr(index), {"zone": f"z{index % 3}"}))
        started = time.perf_counter()
        client.put(key, value)
    else:
        started = time.perf_counter()
        client.delete(key)
    ours, bare = arrivals.wait(_label(op, index))
    return ours - started, bare - started


def _round(client: Any, arrivals: _Arrivals, first: int, writes: int) -> tuple[list[float], ...]:
    ours: list[float] = []
    bare: list[float] = []
    for step in range(writes):
        index = first + step // 2
        a, b = _write(client, arrivals, index, "put" if step % 2 == 0 else "del")
        ours.append(a)
        bare.append(b)
    return ours, bare


def run(quick: bool) -> dict[str, float]:
    import etcd3

    rounds, writes = (3, 200) if quick else (12, 600)
    arrivals = _Arrivals()
    stop = threading.Event()
    with EtcdServer(name="p3") as etcd:
        etcd.start()
        writer = etcd3.client(host=etcd.host, port=etcd.port)
        bare = etcd3.client(host=etcd.host, port=etcd.port)
        watcher = naming.resolve(f"etcd://{etcd.endpoint}/{SERVICE}?prefix={PREFIX}")
        consumer = threading.Thread(target=_consume, args=(watcher, arrivals, stop), daemon=True)
        try:
            bare.add_watch_prefix_callback(KEYS, _bare_callback(arrivals))
            consumer.start()
            _round(writer, arrivals, 0, WARMUP)
            ratio_p50: list[float] = []
            ratio_p99: list[float] = []
            absolute: dict[str, list[float]] = {}
            for number in range(rounds):
                ours, theirs = _round(writer, arrivals, (number + 1) * writes, writes)
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
            bare.close()
            writer.close()
    p50, p99 = summarize(ratio_p50), summarize(ratio_p99)
    results = {
        "p3_etcd_propagation_ratio_p50": p50.median,
        "p3_etcd_propagation_ratio_p50_spread": p50.spread,
        "p3_etcd_propagation_ratio_p99": p99.median,
        "p3_etcd_propagation_ratio_p99_spread": p99.spread,
    }
    for name, values in absolute.items():
        results[f"p3_{name}_ms"] = summarize(values).median
    return results
