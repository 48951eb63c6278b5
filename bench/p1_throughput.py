"""p1: unary throughput of ``naming.dial`` round_robin against grpcio's own channels.

Three child-process servers; three channels over them, each calling the raw-bytes
``/bench.Echo/Echo``:

* ours: ``naming.dial("static:///a1,a2,a3", balancer="round_robin")``;
* native: one ``grpc.insecure_channel("ipv4:a1,a2,a3")`` with grpcio's ``round_robin`` policy;
* direct: one ``grpc.insecure_channel(a1)``, no balancing at all.

A round is a fixed number of calls after a warm-up; rounds are interleaved (ours, native, direct,
ours, ...) and each figure is the median of the per-round ratios of calls per second. The 8-thread
figure compares ours with native only.

Direct is the fastest by far, and not because of balancing: it keeps one server process busy, while
round_robin (ours or grpcio's) wakes each of three in turn. ``p1_rr_vs_direct_seq`` is reported for
that reason, without a target.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

import naming

from ._server import ECHO
from ._servers import ChildServer, child_servers
from ._stats import interleave, ratios

__all__ = ["run"]

THREADS = 8
READY_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
ROUND_TIMEOUT = 60.0
REQUEST = b"p1"

Call = Callable[..., Any]


def _seq_rate(call: Call, calls: int) -> Callable[[], float]:
    """A measure: ``calls`` calls in a row on this thread, in calls per second."""

    def measure() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            call(REQUEST, timeout=CALL_TIMEOUT)
        return calls / (time.perf_counter() - started)

    return measure


def _threaded_rate(call: Call, calls: int, threads: int = THREADS) -> Callable[[], float]:
    """A measure: ``calls`` calls shared by ``threads`` threads, in calls per second.

    The threads are started before the clock and released together; the round ends when the last
    one has made its share.
    """
    share = calls // threads

    def measure() -> float:
        go = threading.Event()
        failures: list[BaseException] = []

        def worker() -> None:
            go.wait(READY_TIMEOUT)
            try:
                for _ in range(share):
                    call(REQUEST, timeout=CALL_TIMEOUT)
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=worker, name=f"p1-caller-{i}") for i in range(threads)]
        for thread in workers:
            thread.start()
        started = time.perf_counter()
        go.set()
        for thread in workers:
            thread.join(ROUND_TIMEOUT)
        elapsed = time.perf_counter() - started
        if failures or any(thread.is_alive() for thread in workers):
            raise RuntimeError(f"bench p1: a round failed: {failures[:1] or 'it did not end'}")
        return share * threads / elapsed

    return measure


def _wait_all_ready(channel: naming.BalancedChannel, count: int) -> None:
    """Wait until ``count`` subchannels of ``channel`` are READY."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        states = [sub.state for sub in channel.subchannels().values()]
        if states.count(grpc.ChannelConnectivity.READY) >= count:
            return
        time.sleep(0.01)
    raise RuntimeError(f"bench p1: {channel.target} did not connect to {count} servers")


def _wait_all_answer(call: Call, servers: list[ChildServer]) -> None:
    """Call until every server has answered at least once (bounded in calls and time)."""
    names = {server.name.encode() for server in servers}
    deadline = time.monotonic() + READY_TIMEOUT
    for _ in range(1000):
        if not names or time.monotonic() > deadline:
            break
        names.discard(call(REQUEST, timeout=READY_TIMEOUT, wait_for_ready=True))
    if names:
        raise RuntimeError(f"bench p1: servers {sorted(names)} never answered")


def run(quick: bool) -> dict[str, float]:
    # Many short rounds. The machine's speed drifts by tens of percent from one second to the next
    # (other work on it), and only ratios of rounds close in time cancel that: a channel measured
    # against itself gave 0.90 over 5 rounds of 1,600 calls, 0.99-1.01 over 40-120 rounds of 50-150.
    rounds = 30 if quick else 150
    calls = 150 if quick else 200  # per sequential round; the threaded rounds make twice as many
    warm_up = 300
    with child_servers(3) as servers:
        addresses = [server.address for server in servers]
        ours = naming.dial("static:///" + ",".join(addresses), balancer="round_robin")
        native = grpc.insecure_channel(
            "ipv4:" + ",".join(addresses), options=[("grpc.lb_policy_name", "round_robin")]
        )
        direct = grpc.insecure_channel(addresses[0])
        try:
            calls_of = {
                name: channel.unary_unary(ECHO, _registered_method=True)
                for name, channel in (("ours", ours), ("native", native), ("direct", direct))
            }
            _wait_all_ready(ours, len(servers))
            _wait_all_answer(calls_of["ours"], servers)
            _wait_all_answer(calls_of["native"], servers)
            _wait_all_answer(calls_of["direct"], servers[:1])
            for call in calls_of.values():
                _seq_rate(call, warm_up)()
                _threaded_rate(call, warm_up)()
            seq = interleave(
                rounds,
                _seq_rate(calls_of["ours"], calls),
                _seq_rate(calls_of["native"], calls),
                _seq_rate(calls_of["direct"], calls),
            )
            threaded = interleave(
                rounds,
                _threaded_rate(calls_of["ours"], 2 * calls),
                _threaded_rate(calls_of["native"], 2 * calls),
            )
        finally:
            ours.close()
            native.close()
            direct.close()
    vs_native_seq = ratios(seq[0], seq[1])
    vs_native_threads = ratios(threaded[0], threaded[1])
    vs_direct_seq = ratios(seq[0], seq[2])
    return {
        "p1_rr_vs_native_seq": vs_native_seq.median,
        "p1_rr_vs_native_seq_spread": vs_native_seq.spread,
        "p1_rr_vs_native_threads": vs_native_threads.median,
        "p1_rr_vs_native_threads_spread": vs_native_threads.spread,
        "p1_rr_vs_direct_seq": vs_direct_seq.median,
        "p1_rr_vs_direct_seq_spread": vs_direct_seq.spread,
    }
