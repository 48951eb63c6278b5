"""UnaryCall: a unary-unary call of the asyncio channel, the asyncio driver of the call policy.

One task per call runs the loop that :mod:`naming.channel._policy` describes, with ``await``
where the sync call blocks: pick (waiting, if the call waits for ready, on the channel's wake-up),
run the attempt on the subchannel's ``grpc.aio`` channel, report it to ``put``, and ask the policy
whether to pick again. The call object is what ``grpc.aio`` returns: awaitable for the response,
with ``code()``, ``details()``, the metadata, ``cancel()`` and done callbacks.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import AioRpcError, Metadata

from .._attempt import abandon, report
from .._policy import CallPolicy, remaining
from ._errors import CallError, closed, settle

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = ["UnaryCall", "begin"]

Code = grpc.StatusCode
_FAILED = object()  # the task's result when the call failed (the error is kept on the call)
CANCELLED_DETAILS = "Locally cancelled by application!"  # grpc.aio's words


def begin(subchannel: Any, put: Any, start: Callable[[], Any]) -> Any:
    """``start()``, grpc's call on ``subchannel``; if grpc refuses it, ``put`` is abandoned and
    the subchannel released: a closed subchannel gives the closed channel's CallError."""
    try:
        return start()
    except BaseException as exc:
        subchannel.release()
        abandon(put)
        if subchannel.closed and isinstance(exc, grpc.aio.UsageError | ValueError):
            raise closed() from None
        raise


def _cancelling() -> bool:
    """True when the running task is being cancelled (Python 3.11+ can tell; 3.10 cannot)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return bool(cancelling is not None and cancelling())


class UnaryCall(grpc.aio.UnaryUnaryCall):  # type: ignore[misc]  # grpc is untyped
    """One unary-unary call: ``await call`` gives the response or raises ``grpc.aio.AioRpcError``
    (:class:`naming.aio.CallError` when it never reached a server); a cancelled call raises
    ``asyncio.CancelledError``, as ``grpc.aio``'s do."""

    def __init__(
        self,
        channel: BalancedChannel,
        policy: CallPolicy,
        spec: tuple[Any, ...],
        request: Any,
        timeout: float | None,
        metadata: Any,
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self._channel = channel
        self._policy = policy
        self._spec = spec
        self._request = request
        self._timeout = timeout
        self._metadata = metadata
        self._credentials = credentials
        self._compression = compression
        self._deadline, self._wait, self._sent_wait = policy.start(timeout, wait_for_ready)
        self._attempt: Any = None  # grpc's call of the last attempt
        self._error: AioRpcError | None = None
        self._cancelled = False
        self._started: asyncio.Future[None] | None = None  # made by wait_for_connection()
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- the driver ------------------------------------------------------------------------------

    async def _run(self) -> Any:
        try:
            return await self._attempts()
        except AioRpcError as error:  # kept, not raised by the task: nobody may await it
            self._error = error
            return _FAILED
        except asyncio.CancelledError:
            self._cancelled = True
            raise

    async def _attempts(self) -> Any:
        channel, policy = self._channel, self._policy
        deadline, wait = self._deadline, self._wait
        info = policy.pick_info(self._metadata)
        attempts = 0
        while True:
            subchannel, put = await channel.pick_async(policy, info, wait, deadline, self._timeout)
            multicallable = subchannel.multicallable(self._spec)
            call = begin(
                subchannel,
                put,
                functools.partial(
                    multicallable,
                    self._request,
                    timeout=remaining(deadline),
                    metadata=self._metadata,
                    credentials=self._credentials,
                    wait_for_ready=self._sent_wait,
                    compression=self._compression,
                ),
            )
            self._attempt = call
            if self._started is not None:
                settle(self._started)
            start = time.perf_counter()
            try:
                response = await call
            except AioRpcError as error:
                subchannel.release()
                report(put, error.code(), time.perf_counter() - start, error)
                attempts += 1
                delay = policy.after(error, wait, attempts)
                if delay is None:
                    raise
            except asyncio.CancelledError:
                subchannel.release()
                report(put, Code.CANCELLED, time.perf_counter() - start, None)
                if self._cancelled or not channel.closed or _cancelling():
                    raise
                raise closed() from None  # grpc cancelled it: the channel closed its subchannel
            else:
                subchannel.release()
                if put is not None:
                    report(put, Code.OK, time.perf_counter() - start, None)
                return response
            await channel.pause(delay, deadline)

    # -- grpc.aio.UnaryUnaryCall ------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        response = yield from self._task.__await__()
        if response is _FAILED:
            assert self._error is not None
            raise self._error
        return response

    async def _done(self) -> None:
        """Wait for the end of the call, without cancelling it if the waiter is cancelled."""
        if not self._task.done():
            await asyncio.wait((self._task,))

    async def code(self) -> Any:
        await self._done()
        if self._cancelled:
            return Code.CANCELLED
        return Code.OK if self._error is None else self._error.code()

    async def details(self) -> str:
        await self._done()
        if self._cancelled:
            return CANCELLED_DETAILS
        if self._error is not None:
            return str(self._error.details() or "")
        return str(await self._attempt.details())

    async def initial_metadata(self) -> Any:
        """The metadata of the attempt that gave the outcome (read once the call has ended)."""
        await self._done()
        if isinstance(self._error, CallError) or self._attempt is None:
            return Metadata()
        return await self._attempt.initial_metadata()

    async def trailing_metadata(self) -> Any:
        await self._done()
        if isinstance(self._error, CallError) or self._attempt is None:
            return Metadata()
        return await self._attempt.trailing_metadata()

    async def debug_error_string(self) -> str:
        await self._done()
        if self._error is not None:
            return str(self._error.debug_error_string() or "")
        return ""

    async def wait_for_connection(self) -> None:
        """Return once the call has reached a server; raise its error if it failed first."""
        if self._attempt is None and not self._task.done():
            started = self._started = asyncio.get_running_loop().create_future()
            self._task.add_done_callback(lambda task: settle(started))
            await started
        if self._attempt is not None and not self._task.done():
            await self._attempt.wait_for_connection()
        if self._task.done():
            if self._cancelled:
                raise asyncio.CancelledError()
            if self._error is not None:
                raise self._error

    def cancel(self) -> bool:
        if self._task.done():
            return False
        self._cancelled = True
        if self._attempt is not None:
            self._attempt.cancel()
        self._task.cancel()
        return True

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._task.done()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._task.add_done_callback(lambda task: callback(self))

    def time_remaining(self) -> float | None:
        return remaining(self._deadline)

    def __repr__(self) -> str:
        state = "done" if self._task.done() else "running"
        return f"<aio.UnaryCall {self._policy.method} {state}>"
