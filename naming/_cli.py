"""The ``grpc-naming`` command: ``backends`` and ``balancers`` list what is installed; ``demo``.

A listing exits 1 when a plugin fails to load. A backend whose client library is missing is shown
as ``missing: ... pip install '...'`` and does not fail the listing: an extra that was not asked
for is not an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from .core import BACKENDS_GROUP, BALANCERS_GROUP, NamingError, PluginRegistry, registry


def _list(group: str, plugins: PluginRegistry, check: bool) -> int:
    infos = plugins.describe(group)
    if not infos:
        print(f"no {group} entry points are installed")
        return 1
    failures = 0
    rows = [("name", "distribution", "module", "status")]
    for info in infos:
        status = "-"
        if check:
            try:
                if group == BACKENDS_GROUP:
                    missing = plugins.backend(info.name).missing()
                    status = f"missing: {'; '.join(missing)}" if missing else "ok"
                else:
                    plugins.balancer(info.name)
                    status = "ok"
            except NamingError as exc:
                status = f"error: {exc}"
                failures += 1
        rows.append((info.name, f"{info.distribution} {info.version}", info.value, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grpc-naming", description="Service naming and client-side balancing for gRPC."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, group in (("backends", BACKENDS_GROUP), ("balancers", BALANCERS_GROUP)):
        sub = commands.add_parser(name, help=f"list the installed {name} (entry points {group})")
        sub.add_argument(
            "--no-check", action="store_true", help="do not load each plugin to check it"
        )
        sub.set_defaults(group=group)
    demo = commands.add_parser(
        "demo", help="replay the grpc-lb experiment on etcd and check its six behaviours"
    )
    demo.add_argument(
        "--registry",
        metavar="HOST:PORT[,...]",
        help="use this etcd instead of a private one (the two etcd-outage behaviours are skipped)",
    )
    demo.add_argument("--calls", type=int, default=300, help="calls per measurement (default 300)")
    demo.add_argument(
        "--backend",
        choices=("etcd", "zookeeper", "consul"),
        default="etcd",
        help="etcd (a real private etcd, the default), zookeeper (a real private ZooKeeper) or "
        "consul (an in-process double of Consul's HTTP API)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args.registry, args.calls, args.backend)
    return _list(args.group, registry(), check=not args.no_check)


def _demo(registry: str | None, calls: int, backend: str = "etcd") -> int:
    from ._demo import run_demo, table

    if calls < 3 or calls % 3:
        print("grpc-naming demo: --calls must be a positive multiple of 3", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="    log: %(message)s")
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {line}", flush=True)

    if backend == "consul" and registry is not None:
        print("grpc-naming demo: --registry is for etcd only", file=sys.stderr)
        return 2
    try:
        results = run_demo(registry, calls, say, backend=backend)
    except (NamingError, OSError, TimeoutError) as exc:
        print(f"grpc-naming demo: {exc}", file=sys.stderr)
        return 1
    print()
    print(table(results))
    passed = sum(r.passed for r in results)
    print(f"\n{passed} of {len(results)} behaviours PASS in {time.monotonic() - started:.1f}s")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
