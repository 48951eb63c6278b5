"""StreamCall: a streaming call of the asyncio channel (unary-stream, stream-unary, stream-stream).

A stream is never replayed, so it makes one pick (awaiting a ready address if it waits for one) and
one attempt, whose grpc call it then stands for: ``read()``, ``write()``, ``done_writing()``,
``async for`` and (for a unary response) ``await`` go to it once it has started. A task per stream
makes the pick, starts the attempt and reports its outcome to ``put`` when it ends; a failed pick
makes the stream fail with that status, as grpc's own streams do on their first read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import AioRpcError, Metadata

from .._attempt import report
from .._policy import CallPolicy, remaining
from ._errors import CallError
from ._unary import CANCELLED_DETAILS, refused

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = ["StreamCall"]

Code = grpc.StatusCode


class StreamCall(  # grpc is untyped
    grpc.aio.UnaryStreamCall,  # type: ignore[misc]
    grpc.aio.StreamUnaryCall,  # type: ignore[misc]
    grpc.aio.StreamStreamCall,  # type: ignore[misc]
):
    """One streaming call; ``requests`` is the request (unary-stream), the request iterator, or
    None (the caller writes with ``write()`` and ``done_writing()``)."""

    def __init__(
        self,
        channel: BalancedChannel,
        policy: CallPolicy,
        spec: tuple[Any, ...],
        requests: Any,
        timeout: float | None,
        metadata: Any,
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self._channel = channel
        self._policy = policy
        self._spec = spec
        self._requests = requests
        self._timeout = timeout
        self._metadata = metadata
        self._credentials = credentials
        self._compression = compression
        self._deadline, self._wait, self._sent_wait = policy.start(timeout, wait_for_ready)
        self._info = policy.pick_info(metadata)  # metadata that is not pairs raises here
        self._call: Any = None  # grpc's call, once started
        self._error: AioRpcError | None = None  # the failed pick, if it failed
        self._failure: Exception | None = None  # what grpc raised when the attempt was started
        self._cancelled = False
        loop = asyncio.get_running_loop()
        self._started: asyncio.Future[None] = loop.create_future()
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        """Pick, start the attempt, and report it to ``put`` when it has ended."""
        channel, policy = self._channel, self._policy
        try:
            picked = await channel.pick_async(
                policy, self._info, self._wait, self._deadline, self._timeout
            )
        except AioRpcError as error:
            self._error = error
            return
        except asyncio.CancelledError:
            self._cancelled = True
            raise
        finally:
            if self._call is None and not self._started.done():
                self._started.set_result(None)
        subchannel, put = picked
        multicallable = subchannel.multicallable(self._spec)
        try:
            try:
                self._call = multicallable(
                    self._requests,
                    timeout=remaining(self._deadline),
                    metadata=self._metadata,
                    credentials=self._credentials,
                    wait_for_ready=self._sent_wait,
                    compression=self._compression,
                )
            except BaseException as exc:
                refused(subchannel, put, exc)
                raise
        except CallError as error:
            self._error = error
            return
        except Exception as exc:  # grpc refused the arguments: raised where the caller reads
            self._failure = exc
            return
        finally:
            if not self._started.done():
                self._started.set_result(None)
        start = time.perf_counter()
        code = Code.CANCELLED
        try:
            code = await self._call.code()
        finally:
            subchannel.release()
            failed = None
            if code is not Code.OK:
                failed = AioRpcError(code, Metadata(), Metadata(), await self._details())
            report(put, code, time.perf_counter() - start, failed)

    async def _details(self) -> str:
        if not self._call.done():
            self._call.cancel()
            return CANCELLED_DETAILS
        return str(await self._call.details())

    async def _attempt(self) -> Any:
        """grpc's call, once started; raises the error of a failed pick."""
        if not self._started.done():
            await asyncio.shield(self._started)
        if self._call is None:
            if self._cancelled:
                raise asyncio.CancelledError()
            if self._failure is not None:
                raise self._failure
            assert self._error is not None
            raise self._error
        return self._call

    # -- reading and writing ---------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[Any]:
        call = await self._attempt()
        async for response in call:
            yield response

    async def read(self) -> Any:
        return await (await self._attempt()).read()

    async def write(self, request: Any) -> None:
        await (await self._attempt()).write(request)

    async def done_writing(self) -> None:
        await (await self._attempt()).done_writing()

    def __await__(self) -> Generator[Any, None, Any]:
        call = yield from self._attempt().__await__()
        return (yield from call.__await__())

    async def wait_for_connection(self) -> None:
        await (await self._attempt()).wait_for_connection()

    # -- status ---------------------------------------------------------------------------------

    async def code(self) -> Any:
        try:
            return await (await self._attempt()).code()
        except AioRpcError as error:
            return error.code()
        except asyncio.CancelledError:
            if self._cancelled:
                return Code.CANCELLED
            raise

    async def details(self) -> str:
        try:
            return str(await (await self._attempt()).details())
        except AioRpcError as error:
            return str(error.details() or "")
        except asyncio.CancelledError:
            if self._cancelled:
                return CANCELLED_DETAILS
            raise

    async def initial_metadata(self) -> Any:
        try:
            return await (await self._attempt()).initial_metadata()
        except (AioRpcError, asyncio.CancelledError):
            if self._call is None and (self._error is not None or self._cancelled):
                return Metadata()
            raise

    async def trailing_metadata(self) -> Any:
        try:
            return await (await self._attempt()).trailing_metadata()
        except (AioRpcError, asyncio.CancelledError):
            if self._call is None and (self._error is not None or self._cancelled):
                return Metadata()
            raise

    async def debug_error_string(self) -> str:
        try:
            return str(await (await self._attempt()).debug_error_string())
        except AioRpcError as error:
            return str(error.debug_error_string() or "")

    def cancel(self) -> bool:
        if self._call is not None:
            return bool(self._call.cancel())
        if self._task.done():
            return False
        self._cancelled = True
        self._task.cancel()
        return True

    def cancelled(self) -> bool:
        return self._cancelled or (self._call is not None and self._call.cancelled())

    def done(self) -> bool:
        if self._call is not None:
            return bool(self._call.done())
        return self._task.done()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._task.add_done_callback(lambda task: callback(self))

    def time_remaining(self) -> float | None:
        return remaining(self._deadline)

    def __repr__(self) -> str:
        return f"<aio.StreamCall {self._policy.method} {'done' if self.done() else 'running'}>"
