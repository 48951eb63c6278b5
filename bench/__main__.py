"""python -m bench [--quick] [--only p1,p2,...] [--out FILE] [--no-docs]"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._report import met, update_docs, write_json

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {
    "p1": "bench.p1_throughput",
    "p1a": "bench.p1_aio",
    "p2": "bench.p2_pick",
    "p3": "bench.p3_etcd",
    "p3c": "bench.p3_consul",
    "p4": "bench.p4_scale",
    "p5": "bench.p5_failures",
    "p5a": "bench.p5_aio",
    "p6": "bench.p6_policies",
    "p12": "bench.p12_dns",
    "p10": "bench.p10_zk",
}


def environment() -> dict[str, Any]:
    import grpc

    from naming.testing.etcd import find_etcd

    etcd = subprocess.run([find_etcd(), "--version"], capture_output=True, text=True, timeout=30)
    return {
        "env_cpu_count": os.cpu_count() or 0,
        "env_python": platform.python_version(),
        "env_grpcio": grpc.__version__,
        "env_etcd": etcd.stdout.split()[2] if etcd.stdout.startswith("etcd Version:") else "?",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: under a minute")
    parser.add_argument("--only", help="comma-separated sections (p1..p5)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="do not update the docs table")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {sorted(SECTIONS)}")

    results: dict[str, Any] = environment()
    results["env_mode"] = "quick" if args.quick else "full"
    for section in chosen:
        started = time.monotonic()
        print(f"== {section}", flush=True)
        found = importlib.import_module(SECTIONS[section]).run(args.quick)
        for name, value in sorted(found.items()):
            if not name.endswith("_spread"):
                verdict = {True: "met", False: "MISSED", None: ""}[met(name, found)]
                print(f"   {name} = {value} {verdict}", flush=True)
        print(f"   ({time.monotonic() - started:.1f}s)", flush=True)
        results.update(found)
    write_json(results, args.out)
    print(f"wrote {args.out}")
    if not args.no_docs:
        update_docs(results, args.docs)
        print(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
