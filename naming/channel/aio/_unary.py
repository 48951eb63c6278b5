"""UnaryCall: a unary-unary call of the asyncio channel, the asyncio driver of the call policy.

It drives the loop that :mod:`naming.channel._policy` describes, with ``await`` where the sync call
blocks: pick (waiting, if the call waits for ready, on the channel's wake-up), run the attempt on
the subchannel's ``grpc.aio`` channel, report it to ``put``, and ask the policy whether to pick again.

The hot path makes no task of its own: the first pick (which never waits when an address is ready)
and the first attempt start in the constructor, like ``grpc.aio``'s call, and the coroutine that
awaits the call drives that attempt to its end. A task takes over only where it must: a pick that
waits, a pause before picking again, or an attempt that ended with nobody awaiting the call (its
done callback hands it over). The call object is what ``grpc.aio`` returns: awaitable for the
response, with ``code()``, ``details()``, the metadata, ``cancel()`` and done callbacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import AioRpcError, Metadata

from .._attempt import abandon, report
from .._errors import CallError as SyncCallError
from .._policy import CallPolicy, remaining
from ._errors import CallError, aio_error, closed, settle

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = ["CANCELLED_DETAILS", "UnaryCall", "refused"]

Code = grpc.StatusCode
CANCELLED_DETAILS = "Locally cancelled by application!"  # grpc.aio's words
_AWAITED = object()  # the driver when the coroutine awaiting the call drives its attempt


def refused(subchannel: Any, put: Any, error: BaseException) -> None:
    """grpc refused to start an attempt on ``subchannel`` (it raised ``error``): count it out and
    abandon ``put``; a closed subchannel raises the closed channel's CallError instead."""
    subchannel.release()
    abandon(put)
    if subchannel.closed and isinstance(error, grpc.aio.UsageError | ValueError):
        raise closed() from None


class UnaryCall(grpc.aio.UnaryUnaryCall):  # type: ignore[misc]  # grpc is untyped
    """One unary-unary call: ``await call`` gives the response or raises ``grpc.aio.AioRpcError``
    (:class:`naming.aio.CallError` when it never reached a server); a cancelled call raises
    ``asyncio.CancelledError``, as ``grpc.aio``'s do."""

    # What most calls never change, as class defaults rather than set on every call.
    _attempt: Any = None  # grpc's call of the last attempt
    _running: tuple[Any, Any, float] | None = None  # (subchannel, put, start) of it
    _attempts = 0
    _driver: Any = None  # None, _AWAITED, or the task that drives the call
    _done = False
    _response: Any = None
    _error: AioRpcError | None = None
    _cancelled = False
    _finished: asyncio.Future[None] | None = None  # made when someone waits for the end
    _started: asyncio.Future[None] | None = None  # made by wait_for_connection()
    _callbacks: list[Callable[[Any], None]] | None = None

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
        self._args = (request, metadata, credentials, compression)
        self._timeout = timeout
        # policy.start() and policy.pick_info(), inline: every call comes here.
        deadline = self._deadline = None if timeout is None else time.monotonic() + timeout
        wait = self._wait = bool(wait_for_ready)
        self._sent_wait = policy.sent_when_waiting if wait else wait_for_ready
        info = self._info = policy.info if metadata is None else policy.pick_info(metadata)
        try:
            picked = channel.pick(policy, info, wait, deadline, False, timeout)
        except SyncCallError as failed:
            self._finish(error=aio_error(failed))
            return
        if picked is None:  # it must wait: a task picks
            self._drive()
            return
        try:
            self._start(*picked).add_done_callback(self._first_ended)
        except CallError as failed:
            self._finish(error=failed)

    # -- driving ---------------------------------------------------------------------------------

    def _start(self, subchannel: Any, put: Any) -> Any:
        """Start an attempt on ``subchannel``: grpc's call."""
        request, metadata, credentials, compression = self._args
        deadline = self._deadline
        try:
            call = subchannel.multicallable(self._spec)(
                request,
                timeout=None if deadline is None else max(deadline - time.monotonic(), 0.0),
                metadata=metadata,
                credentials=credentials,
                wait_for_ready=self._sent_wait,
                compression=compression,
            )
        except BaseException as exc:
            refused(subchannel, put, exc)
            raise
        self._attempt = call
        # the latency is only for put
        self._running = (subchannel, put, 0.0 if put is None else time.perf_counter())
        if self._started is not None:
            settle(self._started)
        return call

    def _ended(self, code: Any, error: AioRpcError | None) -> float | None:
        """Count the attempt out and report it to ``put``; the pause before picking again, or
        None when its outcome stands."""
        running, self._running = self._running, None
        assert running is not None
        subchannel, put, start = running
        subchannel.release()
        if put is not None:
            report(put, code, time.perf_counter() - start, error)
        if error is None:
            return None
        self._attempts += 1
        return self._policy.after(error, self._wait, self._attempts)

    def _interrupted(self) -> None:
        """The attempt raised CancelledError: the call was cancelled, or its channel closed."""
        self._ended(Code.CANCELLED, None)
        if self._cancelled or not self._channel.closed or _cancelling():
            self._finish(cancelled=True)
        else:  # grpc cancelled it: the channel closed its subchannel
            self._finish(error=closed())

    def _first_ended(self, call: Any) -> None:
        """grpc's done callback of the first attempt: if nobody drives it, a task takes over."""
        if self._driver is None and self._running is not None:
            self._drive()

    def _drive(self, delay: float | None = None) -> None:
        """Hand the call to a task of its own (from a pause of ``delay`` s, if given)."""
        self._driver = asyncio.get_running_loop().create_task(self._run(delay))
        self._driver.add_done_callback(self._driven)

    def _driven(self, task: asyncio.Task[None]) -> None:
        """The task ended: if it was cancelled before it could run, the call ends cancelled."""
        if not self._done:
            if self._running is not None:
                self._ended(Code.CANCELLED, None)
            self._finish(cancelled=True)

    async def _run(self, delay: float | None = None) -> None:
        """The policy's loop, from wherever the call is: picking, pausing, or an attempt to end."""
        channel, policy = self._channel, self._policy
        try:
            while True:
                if delay is not None:
                    await channel.pause(delay, self._deadline)
                if self._running is None:
                    picked = await channel.pick_async(
                        policy, self._info, self._wait, self._deadline, self._timeout
                    )
                    self._start(*picked)
                try:
                    response = await self._attempt
                except AioRpcError as error:
                    delay = self._ended(error.code(), error)
                    if delay is None:
                        self._finish(error=error)
                        return
                except asyncio.CancelledError:
                    self._interrupted()
                    if self._cancelled:
                        raise
                    return
                else:
                    self._ended(Code.OK, None)
                    self._finish(response=response)
                    return
        except AioRpcError as error:  # the pick gave up
            self._finish(error=error)
        except asyncio.CancelledError:  # while picking or pausing
            if self._running is not None:
                self._ended(Code.CANCELLED, None)
            self._finish(cancelled=True)
            raise

    def _finish(
        self, response: Any = None, error: AioRpcError | None = None, cancelled: bool = False
    ) -> None:
        self._response, self._error, self._done = response, error, True
        self._cancelled = self._cancelled or cancelled
        if self._finished is not None:
            settle(self._finished)
        if self._callbacks:
            loop = asyncio.get_running_loop()
            for callback in self._callbacks:
                loop.call_soon(callback, self)
        self._callbacks = None

    def _outcome(self) -> Any:
        if self._cancelled:
            raise asyncio.CancelledError()
        if self._error is not None:
            raise self._error
        return self._response

    async def _wait_done(self) -> None:
        """Wait for the end of the call, without cancelling it if the waiter is cancelled."""
        if not self._done:
            if self._finished is None:
                self._finished = asyncio.get_running_loop().create_future()
            await asyncio.wait((self._finished,))

    # -- grpc.aio.UnaryUnaryCall ------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        if self._driver is None and self._running is not None:  # drive the attempt from here
            self._driver = _AWAITED
            try:
                response = yield from self._attempt.__await__()
            except AioRpcError as error:
                delay = self._ended(error.code(), error)
                if delay is None:
                    self._finish(error=error)
                    raise
                self._drive(delay)
            except asyncio.CancelledError:
                self._interrupted()
                return self._outcome()
            else:
                self._ended(Code.OK, None)
                self._finish(response=response)
                return response
        if not self._done:
            if isinstance(self._driver, asyncio.Task):
                try:
                    yield from self._driver.__await__()
                except asyncio.CancelledError:
                    if not self._done:  # the awaiting coroutine was cancelled: so is the call
                        self.cancel()
                    raise
            else:
                yield from self._wait_done().__await__()
        return self._outcome()

    async def code(self) -> Any:
        await self._wait_done()
        if self._cancelled:
            return Code.CANCELLED
        return Code.OK if self._error is None else self._error.code()

    async def details(self) -> str:
        await self._wait_done()
        if self._cancelled:
            return CANCELLED_DETAILS
        if self._error is not None:
            return str(self._error.details() or "")
        return str(await self._attempt.details())

    async def initial_metadata(self) -> Any:
        """The metadata of the attempt that gave the outcome (read once the call has ended)."""
        await self._wait_done()
        if isinstance(self._error, CallError) or self._attempt is None:
            return Metadata()
        return await self._attempt.initial_metadata()

    async def trailing_metadata(self) -> Any:
        await self._wait_done()
        if isinstance(self._error, CallError) or self._attempt is None:
            return Metadata()
        return await self._attempt.trailing_metadata()

    async def debug_error_string(self) -> str:
        await self._wait_done()
        return "" if self._error is None else str(self._error.debug_error_string() or "")

    async def wait_for_connection(self) -> None:
        """Return once the call has reached a server; raise its error if it failed first."""
        if self._attempt is None and not self._done:
            started = self._started = asyncio.get_running_loop().create_future()
            if self._finished is None:
                self._finished = asyncio.get_running_loop().create_future()
            self._finished.add_done_callback(lambda future: settle(started))
            await started
        if not self._done:
            await self._attempt.wait_for_connection()
        else:
            self._outcome()

    def cancel(self) -> bool:
        if self._done:
            return False
        self._cancelled = True
        if self._running is not None:  # whoever drives it sees grpc's call end cancelled
            self._attempt.cancel()
        elif isinstance(self._driver, asyncio.Task):  # picking or pausing
            self._driver.cancel()
        return True

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self._done:
            asyncio.get_running_loop().call_soon(callback, self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def time_remaining(self) -> float | None:
        return remaining(self._deadline)

    def __repr__(self) -> str:
        return f"<aio.UnaryCall {self._policy.method} {'done' if self._done else 'running'}>"


def _cancelling() -> bool:
    """True when the running task is being cancelled (Python 3.11+ can tell; 3.10 cannot)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return bool(cancelling is not None and cancelling())
