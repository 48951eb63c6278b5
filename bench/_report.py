"""The results file and the table in docs/benchmarks.md, both made from one run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "met", "render_table", "update_docs", "write_json"]

START = "<!-- bench:table:start -->"
END = "<!-- bench:table:end -->"

# name: (what it measures, target as written, check on (value, all results); None: reported only)
Check = Callable[[float, Mapping[str, Any]], bool] | None
TARGETS: dict[str, tuple[str, str, Check]] = {}


def _target(name: str, what: str, text: str, check: Check) -> None:
    TARGETS[name] = (what, text, check)


def _within_in_flight(in_flight: str) -> tuple[str, Check]:
    """The target of a count of failed calls that may reach the calls that were in flight when the
    server died: ``in_flight``, a figure of the same run (no limit when it is missing)."""
    return "<= in-flight", lambda v, r: v <= r.get(in_flight, math.inf)


_target(
    "p1_rr_vs_native_seq",
    "naming.dial round_robin / grpcio round_robin, 1 caller",
    ">= 0.95",
    lambda v, r: v >= 0.95,
)
_target("p1_rr_vs_native_threads", "the same, 8 caller threads", ">= 0.95", lambda v, r: v >= 0.95)
_target(
    "p1_rr_vs_direct_seq", "naming.dial round_robin / one direct channel, 1 caller", "report", None
)
for _policy in ("rr", "pf"):
    for _size in (3, 100, 10000):
        _target(
            f"p2_pick_share_{_policy}_{_size}",
            f"get()+put(), {'round_robin' if _policy == 'rr' else 'pick_first'}, {_size} addresses / one RPC",
            "<= 0.02",
            lambda v, r: v <= 0.02,
        )
_target(
    "p3_etcd_propagation_ratio_p50",
    "etcd write -> Watcher.next(), / bare etcd3 watch callback (median)",
    "<= 1.5",
    lambda v, r: v <= 1.5,
)
_target(
    "p3_etcd_propagation_ratio_p99", "the same, 99th percentile", "<= 1.5", lambda v, r: v <= 1.5
)
_target(
    "p3_consul_propagation_ratio_p50",
    "Consul double: register/deregister -> Watcher.next(), / bare py-consul blocking loop (median)",
    "<= 1.5",
    lambda v, r: v <= 1.5,
)
_target(
    "p4_update_cost_ratio_10000_vs_10",
    "one update (watcher + balancer) at 10,000 endpoints / at 10",
    "<= 2",
    lambda v, r: v <= 2,
)
_target(
    "p4_initial_resolve_ratio_10000",
    "first next() of 10,000 etcd records / bare get_prefix",
    "<= 2",
    lambda v, r: v <= 2,
)
_target(
    "p4_channel_update_ratio_10000_vs_10",
    "one address added or removed through naming.dial, 10,000 present / 10 present",
    "<= 2",
    lambda v, r: v <= 2,
)
_target(
    "p4_channel_initial_1000",
    "seconds from naming.dial() until 1,000 subchannels exist",
    "report",
    None,
)
_target(
    "p4_channel_initial_10000",
    "seconds from naming.dial() until 10,000 subchannels exist",
    "report",
    None,
)
_target(
    "p4_dns_reresolve_cost_ratio",
    "one dns re-resolution, unchanged answer of 100 records / the bare dnspython A+AAAA queries",
    "<= 1.3",
    lambda v, r: v <= 1.3,
)
_target(
    "p4_dns_reresolve_vs_a_only",
    "the same re-resolution / a bare dnspython A query alone",
    "report",
    None,
)
_target(
    "p5_failed_graceful",
    "failed RPCs, one of 3 servers stopped gracefully (deregistered first)",
    "0",
    lambda v, r: v == 0,
)
_target(
    "p5_failed_sigkill_failfast",
    "failed fail-fast RPCs, one of 3 servers SIGKILLed",
    *_within_in_flight("p5_inflight_at_kill"),
)
_target(
    "p5_failed_sigkill_wfr",
    "failed wait_for_ready RPCs, one of 3 servers SIGKILLed",
    "0",
    lambda v, r: v == 0,
)
_target(
    "p5_failed_sigkill_wfr_idempotent",
    "failed wait_for_ready RPCs, one of 3 SIGKILLed, methods declared idempotent",
    "report",
    None,
)
_target(
    "p3_zk_propagation_ratio_p50",
    "ZooKeeper write -> Watcher.next(), / bare kazoo ChildrenWatch callback (median)",
    "<= 1.5",
    lambda v, r: v <= 1.5,
)
_target("p3_zk_propagation_ratio_p99", "the same, 99th percentile", "<= 1.5", lambda v, r: v <= 1.5)
_target(
    "p4_zk_initial_resolve_ratio_10000",
    "first next() of 10,000 ZooKeeper children / bare kazoo get_children + async gets",
    "<= 2",
    lambda v, r: v <= 2,
)
_target("p5_inflight_at_kill", "RPCs in flight on the killed server when it died", "report", None)
_target(
    "p5_native_failed_sigkill_wfr",
    "anchor: grpcio's own round_robin, the same wait_for_ready load and kill",
    "report",
    None,
)

_target(
    "p6_p2c_vs_rr_seq",
    "throughput, 1 caller, one of 3 servers 5 ms slow: p2c_ewma / our round_robin",
    ">= 3",
    lambda v, r: v >= 3,
)
_target(
    "p6_p2c_vs_ceiling_seq",
    "the same: p2c_ewma / round_robin over the two fast servers only (the ceiling)",
    ">= 0.6",
    lambda v, r: v >= 0.6,
)
_target(
    "p6_p2c_tau10_vs_ceiling_seq",
    "the same with tau=10 s (Finagle's, go-zero's) instead of our default 1 s",
    "report",
    None,
)
_target(
    "p6_p2c_p99_vs_native_rr_16",
    "p99 latency, 16 callers: p2c_ewma / grpcio's round_robin",
    "<= 0.5",
    lambda v, r: v <= 0.5,
)
_target(
    "p6_ceiling_p99_vs_native_rr_16",
    "anchor: p99, 16 callers: round_robin over the two fast only / grpcio's round_robin",
    "report",
    None,
)
_target(
    "p6_lr_vs_ceiling_16",
    "throughput, 16 callers: least_request / round_robin over the two fast only",
    ">= 0.85",
    lambda v, r: v >= 0.85,
)
_target(
    "p6_ring_spread_10",
    "ring_hash: max/mean keys per server, 100,000 keys over 10 servers",
    "<= 1.15",
    lambda v, r: v <= 1.15,
)
_target(
    "p6_ring_moved_11",
    "ring_hash: share of keys moved when an 11th server joins / (1/11)",
    "<= 1.3",
    lambda v, r: v <= 1.3,
)
_target(
    "p6_subset_spread_index",
    "100 clients, subset 10 of 100 servers, by client_index: max/mean clients per server",
    "<= 1.2",
    lambda v, r: v <= 1.2,
)
_target(
    "p6_subset_spread_id",
    "the same by client_id (rendezvous hashing)",
    "report",
    None,
)
for _policy, _label in (
    ("random", "random"),
    ("wrr", "weighted_round_robin"),
    ("lr", "least_request"),
    ("p2c", "p2c_ewma"),
    ("ring", "ring_hash"),
):
    _target(
        f"p2_pick_share_{_policy}_10000",
        f"get()+put(), {_label}, 10,000 addresses / one RPC",
        "<= 0.02",
        lambda v, r: v <= 0.02,
    )

_target(
    "p1_aio_rr_vs_native_16",
    "naming.aio.dial round_robin / grpc.aio with grpcio round_robin, 16 coroutines",
    ">= 0.9",
    lambda v, r: v >= 0.9,
)
_target(
    "p1_aio_vs_sync_16",
    "naming.aio.dial, 16 coroutines / naming.dial, 16 threads (both round_robin)",
    "report",
    None,
)
for _side, _label in (
    ("ours", "naming.aio.dial round_robin, 16 coroutines"),
    ("native", "grpc.aio with grpcio round_robin, 16 coroutines"),
    ("sync", "naming.dial round_robin, 16 threads"),
):
    _target(f"p1_aio_{_side}_rate_16", f"calls/s (median of rounds): {_label}", "report", None)
_target(
    "p5_aio_failed_graceful",
    "naming.aio: failed RPCs, one of 3 servers stopped gracefully (deregistered first)",
    "0",
    lambda v, r: v == 0,
)
_target(
    "p5_aio_failed_sigkill_wfr",
    "naming.aio: failed wait_for_ready RPCs, one of 3 servers SIGKILLed",
    *_within_in_flight("p5_aio_inflight_at_kill"),
)
_target(
    "p5_aio_inflight_at_kill",
    "naming.aio: RPCs in flight on the killed server's subchannel at the SIGKILL",
    "report",
    None,
)


def met(name: str, results: Mapping[str, Any]) -> bool | None:
    """True or False against the target; None when the figure is reported only or missing."""
    entry = TARGETS.get(name)
    if entry is None or entry[2] is None or name not in results:
        return None
    return entry[2](float(results[name]), results)


def write_json(results: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(results), indent=2, sort_keys=True) + "\n")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 0.1 else f"{value:.3f}"
    return str(value)


def render_table(results: Mapping[str, Any]) -> str:
    lines = [
        "| name | what it measures | value | spread | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, (what, text, _check) in TARGETS.items():
        if name not in results:
            lines.append(f"| `{name}` | {what} | not measured | | {text} | |")
            continue
        spread = results.get(f"{name}_spread")
        verdict = {True: "yes", False: "**no**", None: "-"}[met(name, results)]
        spread_text = f"{spread:.2f}" if isinstance(spread, float) else ""
        lines.append(
            f"| `{name}` | {what} | {_format(results[name])} | {spread_text} | {text} | {verdict} |"
        )
    env = ", ".join(f"{k[4:]} {results[k]}" for k in sorted(results) if k.startswith("env_"))
    lines.append("")
    lines.append(f"Run: {env}.")
    return "\n".join(lines)


def update_docs(results: Mapping[str, Any], path: Path) -> None:
    """Replace the table between the markers in ``path`` with this run's."""
    text = path.read_text()
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"bench: {path} has no {START} ... {END} markers")
    path.write_text(f"{head}{START}\n{render_table(results)}\n{END}{tail}")
