"""The channel layer: ``dial()``, the balanced ``grpc.Channel``, and ``register_server()``.

The only layer of grpc-naming that imports gRPC, and only once a channel is made: naming
``dial`` or ``register_server`` loads no gRPC. It drives a balancer (``balancers``) fed by a
resolver (a backend from ``backends``, through the core's plugin registry): one subchannel per
address, one call policy for every kind of call. ``naming`` re-exports these names on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dial import dial
from ._server import ServerRegistration, register_server

if TYPE_CHECKING:
    from ._calls import CallError
    from ._channel import BalancedChannel

__all__ = ["BalancedChannel", "CallError", "ServerRegistration", "dial", "register_server"]


def __getattr__(name: str) -> Any:
    """``BalancedChannel`` and ``CallError`` are imported, with grpc, on first access."""
    if name == "BalancedChannel":
        from ._channel import BalancedChannel

        return BalancedChannel
    if name == "CallError":
        from ._calls import CallError

        return CallError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
