"""grpc-naming: service naming for Python gRPC, with the legacy grpc-go ``naming`` API.

A Resolver turns a target into a Watcher; the Watcher's ``next()`` returns Updates (the whole set
first, then ADD/DELETE deltas); balancers (the ``balancers`` package) consume them. Backends and
balancers are plugins found through entry points. Importing this package loads no registry client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import (
    add_plugin,
    available_backends,
    available_balancers,
    build_resolver,
    register,
    resolve,
)
from ._backend import Backend, Registration
from ._dial import dial
from ._diff import apply_updates, diff
from ._plugins import hookimpl
from ._resolver import Resolver, Watcher
from ._server import ServerRegistration, register_server
from ._target import Target, parse_target
from ._types import Address, FrozenMap, Operation, Update
from ._watch import QueueWatcher, SnapshotWatcher
from .errors import (
    BackendUnavailableError,
    BalancerClosedError,
    DeadlineExceededError,
    NamingError,
    NoAddressAvailableError,
    PluginError,
    TargetError,
    UnknownBalancerError,
    UnknownSchemeError,
    WatcherClosedError,
)

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__version__ = "0.1.0"

__all__ = [
    "Address",
    "Backend",
    "BackendUnavailableError",
    "BalancedChannel",
    "BalancerClosedError",
    "DeadlineExceededError",
    "FrozenMap",
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
]


def __getattr__(name: str) -> Any:
    """``BalancedChannel`` is imported, with grpc, on first access: ``import naming`` stays light."""
    if name == "BalancedChannel":
        from ._channel import BalancedChannel

        return BalancedChannel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
