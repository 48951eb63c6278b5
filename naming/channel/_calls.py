"""The multicallables of a BalancedChannel: the blocking and streaming drivers of the call policy.

Every call follows :class:`naming.channel._policy.CallPolicy` (one per multicallable): it picks a
subchannel (:meth:`naming.channel._channel.BalancedChannel.pick`), runs grpc's own multicallable
on it with what is left of its deadline, reports the outcome to ``put`` (exactly once per attempt
that ran; :mod:`naming.channel._attempt`), and asks the policy what comes next. The blocking call
runs that loop on the caller's thread; ``future()`` drives the same policy without blocking
(:class:`naming.channel._future.UnaryFuture`); a stream makes one pick and one attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from ._attempt import abandon, attempt_done, report, start_attempt
from ._errors import CallError, closed_error
from ._future import UnaryFuture
from ._policy import CallPolicy, remaining

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = [
    "CLOSED",
    "CLOSED_UNARY",
    "KINDS",
    "CallError",
    "StreamStream",
    "StreamUnary",
    "UnaryStream",
    "UnaryUnary",
]

Code = grpc.StatusCode

# grpcio's words for a call made on a closed channel (1.85): its unary __call__ and with_call say
# the first; future() and the streams the second.
CLOSED_UNARY = "Cannot invoke RPC on closed channel!"
CLOSED = "Cannot invoke RPC: Channel closed!"


class _Method:
    """What each multicallable holds: the channel, grpc's arguments for one method, its policy."""

    def __init__(self, channel: BalancedChannel, spec: tuple[Any, ...]) -> None:
        self._channel = channel
        self._spec = spec
        self._policy = CallPolicy(spec[0], spec[1], channel.is_idempotent(spec[1]))


class _UnaryResponse(_Method):
    """``__call__``, ``with_call`` and ``future`` of unary-unary and stream-unary methods."""

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
        *,
        _with_call: bool = False,
    ) -> Any:
        """The response (``with_call``'s result if ``_with_call``); blocks until the call ends.
        Failures raise ``grpc.RpcError``.

        This is the path every blocking call takes, so it stays lean: grpc's plain ``__call__``
        (no ``grpc.Call`` object made when nobody asked for one), ``put`` only when there is one,
        the policy's methods called only after a failure (its start values read inline).
        """
        channel = self._channel
        if channel.closed:  # as grpcio's unary calls on a closed channel
            raise ValueError(CLOSED_UNARY)
        policy = self._policy
        # policy.start(), inline: the deadline, whether picks wait, what grpc is told.
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = bool(wait_for_ready)
        sent_wait = policy.sent_when_waiting if wait else wait_for_ready
        info = policy.info if metadata is None else policy.pick_info(metadata)
        spec = self._spec
        attempts = 0
        while True:
            picked = channel.pick(policy, info, wait, deadline, True, timeout)
            assert picked is not None
            subchannel, put = picked
            start = 0.0 if put is None else time.perf_counter()  # the latency is only for put
            try:
                multicallable = subchannel.multicallable(spec)
                # Positional, in the order grpc's unary- and stream-unary multicallables declare:
                # parsing six keywords cost a tenth of this channel's own time per call. The
                # timeout is remaining(deadline), inline.
                result = (multicallable.with_call if _with_call else multicallable)(
                    request,
                    None if deadline is None else max(deadline - time.monotonic(), 0.0),
                    metadata,
                    credentials,
                    sent_wait,
                    compression,
                )
            except grpc.RpcError as exc:
                report(put, exc.code(), time.perf_counter() - start, exc)
                attempts += 1
                delay = policy.after(exc, wait, attempts)
                if delay is None:
                    raise
            except BaseException as exc:  # the call did not run
                abandon(put)
                if isinstance(exc, ValueError) and subchannel.closed:  # the channel is closing
                    raise closed_error() from None
                raise
            else:
                if put is not None:
                    report(put, Code.OK, time.perf_counter() - start, None)
                return result
            finally:
                subchannel.release()
            channel.pause(delay, deadline)

    def with_call(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> tuple[Any, Any]:
        """The response and the ``grpc.Call``; blocks until the call ends."""
        return self(  # type: ignore[no-any-return]
            request, timeout, metadata, credentials, wait_for_ready, compression, _with_call=True
        )

    def future(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        """A ``grpc.Future`` and ``grpc.Call``; never blocks (a waiting pick runs in a thread)."""
        if self._channel.closed:  # as grpcio's future() on a closed channel
            raise ValueError(CLOSED)
        policy = self._policy
        deadline, wait, sent_wait = policy.start(timeout, wait_for_ready)
        options = {
            "metadata": metadata,
            "credentials": credentials,
            "wait_for_ready": sent_wait,
            "compression": compression,
        }
        info = policy.pick_info(metadata)
        future = UnaryFuture(
            self._channel, policy, self._spec, request, deadline, wait, info, options, timeout
        )
        future.attempt(block=False)
        return future


class _StreamResponse(_Method):
    """``__call__`` of unary-stream and stream-stream methods: one pick per stream, one attempt.

    A failed pick is returned, not raised, like grpc's own failed streams: iterating it raises it.
    With ``wait_for_ready=True`` the call itself waits for a ready address.
    """

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        """The response iterator and ``grpc.Call`` of the stream, or the CallError of its pick."""
        if self._channel.closed:  # as grpcio's streams on a closed channel
            raise ValueError(CLOSED)
        policy = self._policy
        deadline, wait, sent_wait = policy.start(timeout, wait_for_ready)
        info = policy.pick_info(metadata)
        try:
            picked = self._channel.pick(policy, info, wait, deadline, True, timeout)
        except CallError as failed:
            return failed
        assert picked is not None
        subchannel, put = picked
        start = time.perf_counter()
        call = start_attempt(
            subchannel,
            put,
            lambda: subchannel.multicallable(self._spec)(
                request,
                timeout=remaining(deadline),
                metadata=metadata,
                credentials=credentials,
                wait_for_ready=sent_wait,
                compression=compression,
            ),
        )
        if not isinstance(call, CallError):
            call.add_done_callback(lambda done: attempt_done(subchannel, put, start, done))
        return call


class UnaryUnary(_UnaryResponse, grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """A unary-unary method of a BalancedChannel."""


class StreamUnary(_UnaryResponse, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    """A stream-unary method of a BalancedChannel (its requests cannot be replayed: no re-pick)."""


class UnaryStream(_StreamResponse, grpc.UnaryStreamMultiCallable):  # type: ignore[misc]
    """A unary-stream method of a BalancedChannel."""


class StreamStream(_StreamResponse, grpc.StreamStreamMultiCallable):  # type: ignore[misc]
    """A stream-stream method of a BalancedChannel."""


# The multicallable class of each kind of method, for the channel's four methods (ChannelBase).
KINDS: dict[str, Callable[..., Any]] = {
    "unary_unary": UnaryUnary,
    "unary_stream": UnaryStream,
    "stream_unary": StreamUnary,
    "stream_stream": StreamStream,
}
