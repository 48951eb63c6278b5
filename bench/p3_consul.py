"""p3 (Consul): how long a change on the Consul double takes to come out of ``Watcher.next()``,
against a bare py-consul blocking-query loop on the same double.

An in-process Consul double (naming.testing.consul; not a real agent). Two observers follow one
service at the same time: ours (``naming.resolve`` of a ``consul://`` target, its ``next()``
consumed in a thread) and a bare loop of py-consul's ``health.service(index=..., wait=...)`` that
diffs each answer against the last. A third client makes the changes, one at a time: a register of a
new instance, then its deregister, and so on. Each is timed from just before the call to the moment
each observer has it; the next waits until both have seen this one.

Per round: p50 of ours / p50 of the bare loop's; the figure is the median over rounds. The absolute
p50s are reported too (``p3_consul_*_ms``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import naming
from naming.testing.consul import ConsulDouble

from ._stats import percentile, summarize

__all__ = ["run"]

SERVICE = "svc"
WAIT = 10.0  # seconds for what must happen
WARMUP = 10


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
            done = self._cond.wait_for(
                lambda: label in self.seen["ours"] and label in self.seen["bare"], WAIT
            )
            if not done:
                raise RuntimeError(f"p3c: change {label} did not reach both observers in {WAIT}s")
            return self.seen["ours"].pop(label), self.seen["bare"].pop(label)


def _port(index: int) -> int:
    return 10000 + index


def _consume(watcher: naming.Watcher, arrivals: _Arrivals, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            updates = watcher.next(0.2)
        except naming.WatcherClosedError:
            return
        when = time.perf_counter()
        labels = [
            f"{'put' if u.op is naming.Operation.ADD else 'del'}-{int(u.addr.rpartition(':')[2])}"
            for u in updates
        ]
        if labels:
            arrivals.record("ours", labels, when)


def _bare_loop(client: Any, arrivals: _Arrivals, stop: threading.Event) -> None:
    """The loop a py-consul user writes: block on the index, diff the ports."""
    index, known = None, set[int]()
    while not stop.is_set():
        try:
            index, entries = client.health.service(SERVICE, index=index, wait="1s", passing=True)
        except Exception:  # the double closing under us at the end
            return
        when = time.perf_counter()
        ports = {entry["Service"]["Port"] for entry in entries}
        labels = [f"put-{p}" for p in ports - known] + [f"del-{p}" for p in known - ports]
        known = ports
        if labels:
            arrivals.record("bare", labels, when)


def _round(client: Any, arrivals: _Arrivals, first: int, changes: int) -> tuple[list[float], ...]:
    ours: list[float] = []
    bare: list[float] = []
    for step in range(changes):
        port = _port(first + step // 2)
        started = time.perf_counter()
        if step % 2 == 0:
            client.agent.service.register(
                SERVICE, service_id=f"i{port}", address="127.0.0.1", port=port
            )
            label = f"put-{port}"
        else:
            client.agent.service.deregister(f"i{port}")
            label = f"del-{port}"
        a, b = arrivals.wait(label)
        ours.append(a - started)
        bare.append(b - started)
    return ours, bare


def run(quick: bool) -> dict[str, float]:
    import consul

    rounds, changes = (3, 40) if quick else (10, 200)
    arrivals = _Arrivals()
    stop = threading.Event()
    with ConsulDouble() as double:
        writer = consul.Consul(host="127.0.0.1", port=double.port)
        reader = consul.Consul(host="127.0.0.1", port=double.port)
        watcher = naming.resolve(f"consul://{double.endpoint}/{SERVICE}?wait=1")
        threads = [
            threading.Thread(target=_consume, args=(watcher, arrivals, stop), daemon=True),
            threading.Thread(target=_bare_loop, args=(reader, arrivals, stop), daemon=True),
        ]
        try:
            for thread in threads:
                thread.start()
            _round(writer, arrivals, 0, WARMUP)
            ratio: list[float] = []
            absolute: dict[str, list[float]] = {"ours_p50": [], "bare_p50": []}
            for number in range(rounds):
                ours, theirs = _round(writer, arrivals, (number + 1) * changes, changes)
                absolute["ours_p50"].append(percentile(ours, 0.5) * 1000)
                absolute["bare_p50"].append(percentile(theirs, 0.5) * 1000)
                ratio.append(percentile(ours, 0.5) / percentile(theirs, 0.5))
        finally:
            stop.set()
            watcher.close()
            for thread in threads:
                thread.join(WAIT)
            writer.http.close()
            reader.http.close()
    summary = summarize(ratio)
    results = {
        "p3_consul_propagation_ratio_p50": summary.median,
        "p3_consul_propagation_ratio_p50_spread": summary.spread,
    }
    for name, values in absolute.items():
        results[f"p3_consul_{name}_ms"] = summarize(values).median
    return results
