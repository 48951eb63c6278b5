"""gRPC's address targets, read as grpcio reads them: ``ipv4:``, ``ipv6:``, ``unix:``, ``unix-abstract:``.

* ``ipv4:10.0.0.1:50051,10.0.0.2:50051`` and ``ipv6:[::1]:50051,[::2]:50051``: literal addresses,
  each with its port, in the order written (also ``ipv4:///...``).
* ``unix:relative/path``, ``unix:/abs/path`` and ``unix:///abs/path``: one address, the unix target
  itself (``unix:/abs/path``), which the subchannel hands to grpcio as written.
* ``unix-abstract:name``: a socket in Linux's abstract namespace.

The first ``next()`` returns every address as ADD; the set never changes.
"""

from __future__ import annotations

import ipaddress
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

__all__ = ["AddressBackend", "AddressResolver", "parse_address_target"]

_IP_VERSION = {"ipv4": 4, "ipv6": 6}


def parse_address_target(target: Target) -> list[Address]:
    """The addresses an ipv4/ipv6/unix/unix-abstract target names; TargetError says what is wrong."""
    scheme = target.scheme
    if target.authority:
        raise TargetError(f"{scheme}: the authority must be empty, got {target.authority!r}")
    if target.options:
        raise TargetError(f"{scheme}: takes no options, got {sorted(target.options)}")
    if scheme == "unix":
        return [Address(f"unix:{target.endpoint}")]
    if scheme == "unix-abstract":
        return [Address(f"unix-abstract:{target.endpoint}")]
    version = _IP_VERSION[scheme]
    addresses = []
    for position, text in enumerate(target.endpoint.split(","), start=1):
        try:
            host, _ = split_host_port(text)
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError as exc:
            raise TargetError(
                f"{scheme}: address {position} of {target.endpoint!r} is not an "
                f"IPv{version} address with a port: {exc}"
            ) from None
        if ip.version != version:
            raise TargetError(
                f"{scheme}: address {position} of {target.endpoint!r} is not an IPv{version} address"
            )
        addresses.append(Address(text))
    return list(dict.fromkeys(addresses))


class AddressResolver(Resolver):
    """Resolves an address target to the addresses written in it."""

    def resolve(self, target: Target | str) -> SnapshotWatcher:
        parsed = as_target(target)
        return SnapshotWatcher(parse_address_target(parsed), name=parsed.scheme)


class AddressBackend(Backend):
    schemes = ("ipv4", "ipv6", "unix", "unix-abstract")

    def build(self, target: Target, **options: Any) -> Resolver:
        if options:
            raise TypeError(f"{target.scheme}: takes no options, got {sorted(options)}")
        parse_address_target(target)  # fail at build time, not in the watcher
        return AddressResolver()


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(AddressBackend())
