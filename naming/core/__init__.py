"""The naming core: the layer every other part of grpc-naming, and every plugin, builds on.

Types (``Address``, ``Update``, ``Target``), the ``Resolver``/``Watcher`` contracts and the watchers
backends feed, ``diff``, ``Backend``/``Registration``, the plugin registry and the module-level entry
points. It imports nothing of ``balancers``, ``backends`` or the channel (``naming.channel``), and
no gRPC: the layers above import it, never the other way round (docs/architecture.md).

``balancers`` and ``backends`` import from here (``from naming.core import Address``); programs and
third-party plugins may equally use the ``naming`` facade, which re-exports all of it.
"""

from __future__ import annotations

from ..errors import (
    BackendUnavailableError,
    BalancerClosedError,
    DeadlineExceededError,
    MissingDependencyError,
    NamingError,
    NoAddressAvailableError,
    PluginError,
    TargetError,
    UnknownBalancerError,
    UnknownSchemeError,
    WatcherClosedError,
)
from ._api import (
    add_plugin,
    as_target,
    available_backends,
    available_balancers,
    build_resolver,
    register,
    resolve,
)
from ._backend import Backend, Registration
from ._backoff import Backoff
from ._closing import Closeable
from ._diff import apply_updates, diff
from ._hostport import split_host_port
from ._keepalive import KeptRegistration, keepalive
from ._loop import RegistryWatcher
from ._options import OptionKind, merge_options
from ._plugins import (
    BACKENDS_GROUP,
    BALANCER_METHODS,
    BALANCERS_GROUP,
    BalancerLike,
    PluginInfo,
    PluginRegistry,
    hookimpl,
    is_balancer_class,
    registry,
    set_registry,
)
from ._records import (
    RecordCodec,
    RecordDecoder,
    RecordFormat,
    RecordSkipper,
    encode_record,
    record_address,
)
from ._resolver import AsyncWatcher, Resolver, Watcher, WatchingResolver
from ._target import Target, parse_target
from ._timeouts import as_timeout
from ._types import Address, FrozenMap, Operation, Update
from ._watch import QueueWatcher, SnapshotWatcher

__all__ = [
    "BACKENDS_GROUP",
    "BALANCERS_GROUP",
    "BALANCER_METHODS",
    "Address",
    "AsyncWatcher",
    "Backend",
    "BackendUnavailableError",
    "Backoff",
    "BalancerClosedError",
    "BalancerLike",
    "Closeable",
    "DeadlineExceededError",
    "FrozenMap",
    "KeptRegistration",
    "MissingDependencyError",
    "NamingError",
    "NoAddressAvailableError",
    "Operation",
    "OptionKind",
    "PluginError",
    "PluginInfo",
    "PluginRegistry",
    "QueueWatcher",
    "RecordCodec",
    "RecordDecoder",
    "RecordFormat",
    "RecordSkipper",
    "Registration",
    "RegistryWatcher",
    "Resolver",
    "SnapshotWatcher",
    "Target",
    "TargetError",
    "UnknownBalancerError",
    "UnknownSchemeError",
    "Update",
    "Watcher",
    "WatcherClosedError",
    "WatchingResolver",
    "add_plugin",
    "apply_updates",
    "as_target",
    "as_timeout",
    "available_backends",
    "available_balancers",
    "build_resolver",
    "diff",
    "encode_record",
    "hookimpl",
    "is_balancer_class",
    "keepalive",
    "merge_options",
    "parse_target",
    "record_address",
    "register",
    "registry",
    "resolve",
    "set_registry",
    "split_host_port",
]
