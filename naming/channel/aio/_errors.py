"""CallError of the asyncio channel: a call that ended before it reached a server.

It is a ``grpc.aio.AioRpcError`` (so ``except grpc.aio.AioRpcError`` and ``except grpc.RpcError``
both catch it), made from the sync channel's :class:`naming.channel._errors.CallError` that the
shared call policy gives up with: the same codes and the same details.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc.aio import AioRpcError, Metadata

from .._errors import CallError as SyncCallError

__all__ = ["CallError", "aio_error", "closed", "settle"]


class CallError(AioRpcError):  # type: ignore[misc]  # grpc is untyped
    """A call that ended before it reached a server: no address, its deadline, a closed channel."""

    def __init__(self, code: Any, details: str) -> None:
        super().__init__(code, Metadata(), Metadata(), details, f"{code.name}: {details}")

    def __reduce__(self) -> Any:
        return (type(self), (self.code(), self.details()))


def aio_error(error: SyncCallError) -> CallError:
    """The asyncio form of the policy's ``error``."""
    return CallError(error.code(), error.details())


def closed() -> CallError:
    """A call waiting in, or running on, a channel that was closed: CANCELLED."""
    return CallError(grpc.StatusCode.CANCELLED, "channel: the channel is closed")


def settle(waiter: asyncio.Future[None]) -> None:
    """Resolve ``waiter`` (a future some coroutine awaits to be woken) unless it is done."""
    if not waiter.done():
        waiter.set_result(None)
