"""p12, the dns backend: what one re-resolution costs over the DNS queries it needs.

A private dnsmasq (``naming.testing.dns``) holds a name with 100 A records and TTL 600 s, so the
watcher's own thread stays idle between the rounds asked for. Interleaved rounds:

* ours: ``DnsWatcher.resolve_now()`` until the round has finished (``wait_rounds``): the A and AAAA
  queries through dnspython, the stable ordering, ``publish()`` of an unchanged answer (which emits
  nothing) and the wake-up of the watcher's thread;
* the anchor: the bare dnspython queries of the same name that a dual-stack lookup needs, A and
  AAAA, on the bench thread, with the same resolver settings.

``p4_dns_reresolve_cost_ratio`` is the median of ours over the anchor per round (target <= 1.3);
``p4_dns_reresolve_vs_a_only`` is ours over a bare A query alone (reported: the AAAA query is part
of what a dual-stack resolver asks; an AAAA query that finds nothing is cheap next to 100 A records).
"""

from __future__ import annotations

from typing import Any

import dns.resolver

import naming
from backends.dns import DnsWatcher
from naming.testing.dns import DnsServer

from ._stats import interleave, ratios, timed

__all__ = ["run"]

NAME = "bench.example.com"
RECORDS = 100


def _resolver(server: DnsServer) -> dns.resolver.Resolver:
    bare = dns.resolver.Resolver(configure=False)
    bare.nameservers = ["127.0.0.1"]
    bare.port = server.port
    bare.timeout = bare.lifetime = 5.0
    bare.use_edns(0, 0, 4096)
    return bare


def run(quick: bool) -> dict[str, Any]:
    rounds = 60 if quick else 300
    with DnsServer(ttl=600) as server:
        server.start()
        server.set_hosts(NAME, [f"127.0.1.{i}" for i in range(1, RECORDS + 1)])
        bare = _resolver(server)
        target = server.target(f"{NAME}:50051")
        resolver = naming.build_resolver(target, min_interval=0.001, timeout=5.0)
        try:
            watcher = resolver.resolve(target)
            assert isinstance(watcher, DnsWatcher)
            first = watcher.next(timeout=10.0)
            assert len(first) == RECORDS, f"p12: {len(first)} addresses, expected {RECORDS}"
            assert watcher.wait_rounds(1, 10.0)

            def ours() -> float:
                def once() -> None:
                    done = watcher.rounds + 1
                    while not watcher.resolve_now():
                        pass  # the rate limit (1 ms) has not passed yet
                    if not watcher.wait_rounds(done, 10.0):
                        raise RuntimeError("p12: a re-resolution did not finish in 10 s")

                return timed(once)

            def anchor() -> float:
                def once() -> None:
                    for rdtype in ("A", "AAAA"):
                        bare.resolve(NAME, rdtype, raise_on_no_answer=False, search=False)

                return timed(once)

            def a_only() -> float:
                return timed(lambda: bare.resolve(NAME, "A", search=False))

            for measure in (ours, anchor, a_only):  # warm up
                measure()
            mine, base, single = interleave(rounds, ours, anchor, a_only)
            assert watcher.next(timeout=0) == [], "p12: an unchanged answer emitted updates"
            watcher.close()
        finally:
            resolver.close()
    cost = ratios(mine, base)
    return {
        "p4_dns_reresolve_cost_ratio": cost.median,
        "p4_dns_reresolve_cost_ratio_spread": cost.spread,
        "p4_dns_reresolve_vs_a_only": ratios(mine, single).median,
        "p4_dns_reresolve_us": sorted(mine)[len(mine) // 2] * 1e6,
    }
