"""grpc-naming: service naming for Python gRPC, with the legacy grpc-go ``naming`` API.

A Resolver turns a target into a Watcher; the Watcher's ``next()`` returns Updates (the whole set
first, then ADD/DELETE deltas); balancers (the ``balancers`` package) consume them. Backends and
balancers are plugins found through entry points. Importing this package loads no registry client
and no gRPC.

This module is the facade: it re-exports the core (:mod:`naming.core`) and, on first access, the
channel (:mod:`naming.channel`: ``dial``, ``BalancedChannel``, ``register_server``), which is where
gRPC is imported. The layers and their one-way imports: docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import (
    Address,
    Backend,
    BackendUnavailableError,
    BalancerClosedError,
    DeadlineExceededError,
    FrozenMap,
    MissingDependencyError,
    NamingError,
    NoAddressAvailableError,
    Operation,
    PluginError,
    QueueWatcher,
    Registration,
    Resolver,
    SnapshotWatcher,
    Target,
    TargetError,
    UnknownBalancerError,
    UnknownSchemeError,
    Update,
    Watcher,
    WatcherClosedError,
    add_plugin,
    apply_updates,
    as_target,
    available_backends,
    available_balancers,
    build_resolver,
    diff,
    hookimpl,
    parse_target,
    register,
    resolve,
    split_host_port,
)

if TYPE_CHECKING:
    from .channel import BalancedChannel, ServerRegistration, dial, register_server

__version__ = "0.1.0"

__all__ = [
    "Address",
    "Backend",
    "BackendUnavailableError",
    "BalancedChannel",
    "BalancerClosedError",
    "DeadlineExceededError",
    "FrozenMap",
    "MissingDependencyError",
    "NamingError",
    "NoAddressAvailableError",
    "Operation",
    "PluginError",
    "QueueWatcher",
    "Registration",
    "Resolver",
    "ServerRegistration",
    "SnapshotWatcher",
    "Target",
    "TargetError",
    "UnknownBalancerError",
    "UnknownSchemeError",
    "Update",
    "Watcher",
    "WatcherClosedError",
    "add_plugin",
    "apply_updates",
    "as_target",
    "available_backends",
    "available_balancers",
    "build_resolver",
    "dial",
    "diff",
    "hookimpl",
    "parse_target",
    "register",
    "register_server",
    "resolve",
    "split_host_port",
]

_CHANNEL_NAMES = frozenset({"BalancedChannel", "ServerRegistration", "dial", "register_server"})


def __getattr__(name: str) -> Any:
    """The channel's names are imported, with grpc, on first access: ``import naming`` stays light."""
    if name in _CHANNEL_NAMES:
        from . import channel

        value = getattr(channel, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
