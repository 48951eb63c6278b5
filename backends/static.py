"""static: a fixed list of addresses, ``static:///10.0.0.1:50051,10.0.0.2:50051``.

The first ``next()`` returns every address as ADD, in the order written; later calls block until
the watcher is closed (or return ``[]`` at their timeout). The list never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from naming.core import (
    Address,
    Backend,
    Resolver,
    SnapshotWatcher,
    Target,
    TargetError,
    as_target,
    hookimpl,
    split_host_port,
)

__all__ = ["StaticBackend", "StaticResolver", "parse_static_addresses"]


def parse_static_addresses(target: Target) -> list[Address]:
    """The addresses a static target lists; TargetError names the first bad one."""
    if target.authority:
        raise TargetError(
            f"static: the authority must be empty (static:///...), got {target.authority!r}"
        )
    if target.options:
        raise TargetError(f"static: takes no options, got {sorted(target.options)}")
    addresses = []
    for position, text in enumerate(target.endpoint.split(","), start=1):
        try:
            split_host_port(text)
        except ValueError as exc:
            raise TargetError(f"static: address {position} of {target.endpoint!r}: {exc}") from None
        addresses.append(Address(text))
    return list(dict.fromkeys(addresses))


class StaticResolver(Resolver):
    """Resolves a static target to the addresses written in it."""

    def resolve(self, target: Target | str) -> SnapshotWatcher:
        return SnapshotWatcher(parse_static_addresses(as_target(target)), name="static")


class StaticBackend(Backend):
    schemes = ("static",)

    def build(self, target: Target, **options: Any) -> Resolver:
        if options:
            raise TypeError(f"static: takes no options, got {sorted(options)}")
        parse_static_addresses(target)  # fail at build time, not in the watcher
        return StaticResolver()


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(StaticBackend())
