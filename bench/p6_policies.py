"""p6: the five policies against round robin, with one of three servers 5 ms slow.

Three child-process servers, s3 sleeping 5 ms in every call. Throughput (calls per second) and
p99 latency through ``naming.dial`` for p2c_ewma and least_request, against our round_robin over
the same three, round_robin over the two fast ones only (the ceiling for any policy) and grpcio's
own round_robin; rounds interleaved, medians of per-round ratios. Then computations without a
network: the spread of ring_hash over 10 servers and the keys it moves when an 11th joins, the
spread of subsets over 100 servers, and (``p2_pick_share_*``) the cost of one pick next to one RPC
for each policy at 10,000 addresses, measured as bench p2 does.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc

import naming
from balancers import (
    DoneInfo,
    LeastRequest,
    P2CEwma,
    PickInfo,
    Random,
    RingHash,
    WeightedRoundRobin,
)
from balancers._select import Selection
from balancers.ringhash import RingHashPicker, _Points
from naming import Address

from ._server import ECHO
from ._servers import child_servers
from ._stats import interleave, percentile, ratios
from .p1_throughput import _seq_rate, _threaded_rate, _wait_all_answer, _wait_all_ready
from .p2_pick import _balancer

__all__ = ["run"]

SLOW_MS = 5.0
CALLERS = 16
CALL_TIMEOUT = 10.0
ROUND_TIMEOUT = 60.0
PICK_POLICIES = {
    "random": Random,
    "wrr": WeightedRoundRobin,
    "lr": LeastRequest,
    "p2c": P2CEwma,
    "ring": RingHash,
}

Call = Callable[..., Any]


def _p99(call: Call, calls: int, threads: int = CALLERS) -> Callable[[], float]:
    """A measure: ``calls`` calls shared by ``threads`` threads; the 99th percentile latency."""
    share = calls // threads

    def measure() -> float:
        go = threading.Event()
        latencies: list[list[float]] = [[] for _ in range(threads)]
        failures: list[BaseException] = []

        def worker(mine: list[float]) -> None:
            go.wait(CALL_TIMEOUT)
            try:
                for _ in range(share):
                    started = time.perf_counter()
                    call(b"p6", timeout=CALL_TIMEOUT)
                    mine.append(time.perf_counter() - started)
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=worker, args=(mine,)) for mine in latencies]
        for thread in workers:
            thread.start()
        go.set()
        for thread in workers:
            thread.join(ROUND_TIMEOUT)
        if failures or any(thread.is_alive() for thread in workers):
            raise RuntimeError(f"bench p6: a round failed: {failures[:1] or 'it did not end'}")
        return percentile([x for mine in latencies for x in mine], 0.99)

    return measure


def _channels(quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 40
    calls = 60 if quick else 200
    results: dict[str, Any] = {}
    with child_servers(3, delays_ms=(0.0, 0.0, SLOW_MS)) as servers:
        every = "static:///" + ",".join(s.address for s in servers)
        fast = "static:///" + ",".join(s.address for s in servers[:2])
        channels: dict[str, Any] = {
            "p2c": naming.dial(every, balancer="p2c_ewma"),
            "p2c_tau10": naming.dial(every, balancer="p2c_ewma", tau=10.0),
            "lr": naming.dial(every, balancer="least_request"),
            "rr": naming.dial(every, balancer="round_robin"),
            "ceiling": naming.dial(fast, balancer="round_robin"),
        }
        native = grpc.insecure_channel(
            "ipv4:" + ",".join(s.address for s in servers),
            options=[("grpc.lb_policy_name", "round_robin")],
        )
        try:
            for key, channel in channels.items():
                _wait_all_ready(channel, 2 if key == "ceiling" else 3)
            calls_of = {
                k: c.unary_unary(ECHO, _registered_method=True) for k, c in channels.items()
            }
            calls_of["native"] = native.unary_unary(ECHO, _registered_method=True)
            for key, call in calls_of.items():
                _wait_all_answer(call, servers[:2] if key == "ceiling" else servers)
                _seq_rate(call, 30 if quick else 100)()
            order = ["p2c", "rr", "ceiling", "p2c_tau10"]
            seq = interleave(rounds, *(_seq_rate(calls_of[k], calls) for k in order))
            by = dict(zip(order, seq, strict=True))
            p99 = interleave(
                rounds,
                _p99(calls_of["p2c"], 4 * calls),
                _p99(calls_of["native"], 4 * calls),
                _p99(calls_of["ceiling"], 4 * calls),
            )
            rate = interleave(
                rounds,
                _threaded_rate(calls_of["lr"], 4 * calls, CALLERS),
                _threaded_rate(calls_of["ceiling"], 4 * calls, CALLERS),
            )
        finally:
            for channel in channels.values():
                channel.close()
            native.close()
    figures = {
        "p6_p2c_vs_rr_seq": ratios(by["p2c"], by["rr"]),
        "p6_p2c_vs_ceiling_seq": ratios(by["p2c"], by["ceiling"]),
        "p6_p2c_tau10_vs_ceiling_seq": ratios(by["p2c_tau10"], by["ceiling"]),
        "p6_p2c_p99_vs_native_rr_16": ratios(p99[0], p99[1]),
        "p6_ceiling_p99_vs_native_rr_16": ratios(p99[2], p99[1]),
        "p6_lr_vs_ceiling_16": ratios(rate[0], rate[1]),
    }
    for name, summary in figures.items():
        results[name] = round(summary.median, 4)
        results[f"{name}_spread"] = round(summary.spread, 3)
    return results


def _ring(servers: int, keys: list[PickInfo]) -> list[str]:
    addresses = [Address(f"10.6.0.{i}:443") for i in range(servers)]
    picker = RingHashPicker(
        addresses,
        [_Points(a, 1) for a in addresses],
        hash_key="x-user-id",
        require_key=True,
        min_ring_size=RingHash().min_ring_size,
        rng=random.Random(0),
    )
    return [picker.pick(k)[0].addr for k in keys]


def _computed() -> dict[str, Any]:
    keys = [PickInfo("/p6/Call", (("x-user-id", f"user-{i}"),)) for i in range(100_000)]
    ten, eleven = _ring(10, keys), _ring(11, keys)
    counts = Counter(ten)
    moved = sum(a != b for a, b in zip(ten, eleven, strict=True)) / len(keys)
    servers = [Address(f"10.7.{i // 250}.{i % 250}:443") for i in range(100)]
    by_index: Counter[Address] = Counter()
    by_id: Counter[Address] = Counter()
    for client in range(100):
        index = Selection("p6", subset_size=10, client_index=client, client_count=100)
        by_index.update(index.select(servers))
        by_id.update(Selection("p6", subset_size=10, client_id=f"client-{client}").select(servers))
    mean = 100 * 10 / 100
    return {
        "p6_ring_spread_10": round(max(counts.values()) / (len(keys) / 10), 4),
        "p6_ring_moved_11": round(moved / (1 / 11), 4),
        "p6_subset_spread_index": round(max(by_index.values()) / mean, 4),
        "p6_subset_spread_id": round(max(by_id.values()) / mean, 4),
    }


def _picks(balancer: Any, count: int) -> float:
    """Seconds per get() + put(), each pick with a call's PickInfo (ring_hash hashes its key)."""
    done = DoneInfo(code=grpc.StatusCode.OK, latency=0.0001)
    infos = [PickInfo("/p6/Call", (("x-user-id", f"user-{i}"),)) for i in range(1000)]
    get = balancer.get
    started = time.perf_counter()
    for i in range(count):
        _, put = get(info=infos[i % 1000])
        if put is not None:
            put(done)
    return (time.perf_counter() - started) / count


def _pick_shares(quick: bool) -> dict[str, Any]:
    rounds, rpcs, picks = (3, 100, 10_000) if quick else (15, 1_000, 100_000)
    results: dict[str, Any] = {}
    with child_servers(1) as (server,), grpc.insecure_channel(server.address) as channel:
        echo = channel.unary_unary(ECHO)
        for _ in range(200):
            echo(b"", timeout=CALL_TIMEOUT)

        def rpc() -> float:
            started = time.perf_counter()
            for _ in range(rpcs):
                echo(b"", timeout=CALL_TIMEOUT)
            return (time.perf_counter() - started) / rpcs

        for key, cls in PICK_POLICIES.items():
            balancer, resolver = _balancer(cls, 10_000)
            try:
                rpc_times, pick_times = interleave(rounds, rpc, lambda b=balancer: _picks(b, picks))
            finally:
                balancer.close()
                resolver.close()
            summary = ratios(pick_times, rpc_times)
            results[f"p2_pick_share_{key}_10000"] = round(summary.median, 5)
            results[f"p2_pick_share_{key}_10000_spread"] = round(summary.spread, 3)
    return results


def run(quick: bool) -> dict[str, Any]:
    results = _computed()
    results.update(_pick_shares(quick))
    results.update(_channels(quick))
    return results
