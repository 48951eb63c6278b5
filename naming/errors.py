"""The one error tree of grpc-naming.

::

    NamingError                        base of everything this library raises on purpose
    ├── TargetError (ValueError)       a target string that does not parse; names the bad part
    ├── UnknownSchemeError (LookupError)     no backend for the scheme; lists the installed ones
    ├── UnknownBalancerError (LookupError)   no balancer by that name; lists the installed ones
    ├── PluginError                    a plugin failed to load, or registered a name twice
    │   └── MissingDependencyError (ImportError)   a backend's client library is not installed
    ├── WatcherClosedError             next() on a closed watcher
    ├── BalancerClosedError            any call on a closed balancer (and a second close())
    ├── NoAddressAvailableError        fail-fast get() with an empty address list (gRPC UNAVAILABLE)
    ├── BackendUnavailableError        the registry cannot be reached and the call cannot wait
    └── DeadlineExceededError (TimeoutError)   a blocking call ran out of time

Errors from client libraries (etcd3, kazoo, consul, dns) are wrapped at the backend edge with
``raise ... from exc``. Every message starts with the component that raised it, e.g.
``"static: ..."`` or ``"round_robin: ..."``.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "BalancerClosedError",
    "DeadlineExceededError",
    "MissingDependencyError",
    "NamingError",
    "NoAddressAvailableError",
    "PluginError",
    "TargetError",
    "UnknownBalancerError",
    "UnknownSchemeError",
    "WatcherClosedError",
]


class NamingError(Exception):
    """Base class of every error grpc-naming raises on purpose."""


class TargetError(NamingError, ValueError):
    """A target that cannot be parsed; the message names the part that is wrong."""


class UnknownSchemeError(NamingError, LookupError):
    """No backend is installed for a target's scheme."""


class UnknownBalancerError(NamingError, LookupError):
    """No balancer is installed under the requested name."""


class PluginError(NamingError):
    """A plugin could not be loaded, or two plugins claim the same name."""


class MissingDependencyError(PluginError, ImportError):
    """A backend was asked for, but a library it needs is not installed; says what to install."""


class WatcherClosedError(NamingError):
    """The watcher was closed; no more updates will come from it."""


class BalancerClosedError(NamingError):
    """The balancer was closed (the channel is closing)."""


class NoAddressAvailableError(NamingError):
    """A fail-fast pick found no address at all; gRPC reports this as UNAVAILABLE."""


class BackendUnavailableError(NamingError):
    """The registry behind a backend cannot be used right now."""


class DeadlineExceededError(NamingError, TimeoutError):
    """A blocking call did not complete before its timeout."""
