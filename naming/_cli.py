"""The ``grpc-naming`` command: ``backends`` and ``balancers`` list what is installed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._plugins import BACKENDS_GROUP, BALANCERS_GROUP, PluginRegistry, registry
from .errors import NamingError


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
                    plugins.backend(info.name)
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
    args = parser.parse_args(argv)
    return _list(args.group, registry(), check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
