"""The multicallables of the asyncio BalancedChannel: what generated ``grpc.aio`` stubs call.

Each makes the call object of its kind at once, as ``grpc.aio``'s do: a
:class:`naming.channel.aio._unary.UnaryCall` (unary-unary: picked again as the shared call policy
decides) or a :class:`naming.channel.aio._stream.StreamCall` (one pick, one attempt).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from .._policy import CallPolicy
from ._stream import StreamCall
from ._unary import UnaryCall

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = ["KINDS", "StreamStream", "StreamUnary", "UnaryStream", "UnaryUnary"]

CLOSED = "Channel is closed."  # grpc.aio's UsageError for a call on a closed channel


class _Method:
    """What each multicallable holds: the channel, grpc's arguments for one method, its policy."""

    def __init__(self, channel: BalancedChannel, spec: tuple[Any, ...]) -> None:
        self._channel = channel
        self._spec = spec
        self._policy = CallPolicy(spec[0], spec[1], channel.is_idempotent(spec[1]))

    def _call(
        self,
        kind: type[Any],
        request: Any,
        timeout: float | None,
        metadata: Any,
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> Any:
        if self._channel.closed:
            raise grpc.aio.UsageError(CLOSED)
        return kind(
            self._channel,
            self._policy,
            self._spec,
            request,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class UnaryUnary(_Method, grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """A unary-unary method of the asyncio BalancedChannel."""

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> UnaryCall:
        return self._call(  # type: ignore[no-any-return]
            UnaryCall, request, timeout, metadata, credentials, wait_for_ready, compression
        )


class UnaryStream(_Method, grpc.aio.UnaryStreamMultiCallable):  # type: ignore[misc]
    """A unary-stream method of the asyncio BalancedChannel."""

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> StreamCall:
        return self._call(  # type: ignore[no-any-return]
            StreamCall, request, timeout, metadata, credentials, wait_for_ready, compression
        )


class StreamUnary(_Method, grpc.aio.StreamUnaryMultiCallable):  # type: ignore[misc]
    """A stream-unary method of the asyncio BalancedChannel (never picked again)."""

    def __call__(
        self,
        request_iterator: Any = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> StreamCall:
        return self._call(  # type: ignore[no-any-return]
            StreamCall,
            request_iterator,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class StreamStream(_Method, grpc.aio.StreamStreamMultiCallable):  # type: ignore[misc]
    """A stream-stream method of the asyncio BalancedChannel."""

    def __call__(
        self,
        request_iterator: Any = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> StreamCall:
        return self._call(  # type: ignore[no-any-return]
            StreamCall,
            request_iterator,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


# The multicallable class of each kind of method, for the channel's four methods (ChannelBase).
KINDS: dict[str, Callable[..., Any]] = {
    "unary_unary": UnaryUnary,
    "unary_stream": UnaryStream,
    "stream_unary": StreamUnary,
    "stream_stream": StreamStream,
}
