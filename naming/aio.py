"""grpc-naming for asyncio programs (``grpc.aio``): the names of :mod:`naming.channel.aio`.

``await``-able counterparts of ``naming.dial``, ``naming.resolve`` and ``naming.register_server``::

    channel = naming.aio.dial("etcd://127.0.0.1:2379/hello")
    async with channel:
        reply = await GreeterStub(channel).SayHello(HelloRequest(name="you"))

Importing this module imports grpc (``naming`` itself does not). docs/aio.md has the whole story.
"""

from __future__ import annotations

from naming.channel.aio import (
    BalancedChannel,
    CallError,
    ServerRegistration,
    Watcher,
    dial,
    register_server,
    resolve,
)

__all__ = [
    "BalancedChannel",
    "CallError",
    "ServerRegistration",
    "Watcher",
    "dial",
    "register_server",
    "resolve",
]
