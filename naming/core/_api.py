"""The module-level entry points: resolve(), register(), available_*() and add_plugin()."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._backend import Registration
from ._checks import checked_ttl, registrable
from ._plugins import BACKENDS_GROUP, BALANCERS_GROUP, registry
from ._resolver import Resolver, Watcher
from ._target import Target, parse_target
from ._types import Address, Update

__all__ = [
    "add_plugin",
    "as_target",
    "available_backends",
    "available_balancers",
    "build_resolver",
    "register",
    "resolve",
]


def as_target(target: Target | str) -> Target:
    """``target`` as a Target: parsed if it is a str (TargetError when it is not valid)."""
    return target if isinstance(target, Target) else parse_target(target)


def build_resolver(target: Target | str, **options: Any) -> Resolver:
    """The Resolver that the target's backend builds for it (the scheme picks the backend)."""
    parsed = as_target(target)
    backend = registry().backend(parsed.scheme)
    backend.check_installed()
    return backend.build(parsed, **options)


def resolve(target: Target | str, **options: Any) -> Watcher:
    """Start watching ``target``; the backend is picked by the URI scheme.

    ``options`` go to the backend (they add to, and win over, the target's query options).
    Closing the returned watcher also releases the resolver built for it.
    """
    parsed = as_target(target)
    resolver = build_resolver(parsed, **options)
    try:
        watcher = resolver.resolve(parsed)
    except BaseException:
        resolver.close()
        raise
    return _OwningWatcher(watcher, resolver)


class _OwningWatcher(Watcher):
    """A watcher that closes the resolver it came from when it is closed."""

    def __init__(self, watcher: Watcher, resolver: Resolver) -> None:
        self._watcher = watcher
        self._resolver = resolver

    def next(self, timeout: float | None = None) -> list[Update]:
        return self._watcher.next(timeout)

    def close(self) -> None:
        try:
            self._watcher.close()
        finally:
            self._resolver.close()

    def __repr__(self) -> str:
        return f"<watcher {self._watcher!r}>"


def register(
    target: Target | str,
    addr: Address | str,
    metadata: Mapping[str, Any] | None = None,
    *,
    ttl: float = 10.0,
    bind_all: str = "refuse",
    **options: Any,
) -> Registration:
    """Publish ``addr`` under the target's name and keep it alive until ``close()``.

    ``ttl`` is the lease or session time in seconds the backend uses, where it has one: from 1 to
    86,400. ``addr`` must be one a client can dial (``host:port``, port 1-65535, no spaces); a
    bind-all host (``0.0.0.0:50051``, ``[::]:50051``, ``:50051``) is refused unless
    ``bind_all="host"``, which puts this host's address in its place (``NAMING_HOST_IP`` or
    ``POD_IP`` if set, else the host name's first address that is not a loopback one).
    ``metadata`` must be JSON. Every check happens here, before the backend sees anything.
    """
    seconds = checked_ttl(ttl)
    if isinstance(addr, Address):
        if metadata is not None:
            raise ValueError("register: pass metadata inside the Address or as metadata=, not both")
        address = addr
    else:
        address = Address(addr, metadata)
    parsed = as_target(target)
    address = registrable(address, parsed.scheme, bind_all)
    backend = registry().backend(parsed.scheme)
    backend.check_installed()
    return backend.register(parsed, address, ttl=seconds, **options)


def available_backends() -> list[str]:
    """The URI schemes that have a backend installed (or added), sorted."""
    return registry().names(BACKENDS_GROUP)


def available_balancers() -> list[str]:
    """The balancer names installed (or added), sorted."""
    return registry().names(BALANCERS_GROUP)


def add_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin in this process without an entry point, and run its hooks now."""
    registry().add_plugin(plugin, name)
