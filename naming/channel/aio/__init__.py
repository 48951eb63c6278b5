"""The asyncio side of the channel layer: ``dial()`` for ``grpc.aio``, async watchers, and async
server registration (docs/aio.md).

The balancers and the call policy are the sync channel's own; only the channel, its subchannels
and the waiting are async. ``naming.aio`` re-exports these names.
"""

from __future__ import annotations

from ._channel import BalancedChannel
from ._dial import dial
from ._errors import CallError
from ._resolve import Watcher, resolve
from ._server import ServerRegistration, register_server

__all__ = [
    "BalancedChannel",
    "CallError",
    "ServerRegistration",
    "Watcher",
    "dial",
    "register_server",
    "resolve",
]
