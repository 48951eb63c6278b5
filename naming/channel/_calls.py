"""The calls of a BalancedChannel: its multicallables, the futures they return, and CallError.

Each call asks the channel to pick a subchannel (:meth:`naming.channel._channel.BalancedChannel.pick`), runs
grpc's own multicallable on it with what is left of its deadline, and reports the outcome to ``put``.

A unary-request call with ``wait_for_ready=True`` runs fail-fast on the subchannel it was given: if
that subchannel cannot connect (its server went away after the pick), no server saw the call, and it
is picked again, so that it waits for *any* ready address rather than for that one. A unary-unary
call to a method declared idempotent (``idempotent=`` of the channel) is picked again after any
UNAVAILABLE failure too, even one that a server may have seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

from balancers import DoneInfo, Put

from ._subchannel import Subchannel

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = [
    "CallError",
    "StreamStream",
    "StreamUnary",
    "UnaryStream",
    "UnaryUnary",
    "closed_error",
    "idempotent_methods",
    "report",
    "unsent",
]

log = logging.getLogger(__name__)

Code = grpc.StatusCode

_RETRY_BACKOFF = (0.01, 0.2)  # first and longest pause before a wait_for_ready call is re-picked
# grpc's details of a call that failed before it left the client: no server saw it.
_UNSENT = ("failed to connect to all addresses", "DNS resolution failed")


def closed_error() -> CallError:
    return CallError(Code.CANCELLED, "channel: the channel is closed")


def report(put: Put | None, code: Any, latency: float, error: BaseException | None) -> None:
    """Give ``put`` (if any) the outcome of one call; never raises."""
    if put is not None:
        try:
            put(DoneInfo(code, latency, error))
        except Exception:
            log.exception("channel: the balancer's put() failed")


def unsent(call: Any) -> bool:
    """True when a finished call failed to connect: no server saw it, so it may be picked again."""
    return call.code() is Code.UNAVAILABLE and (call.details() or "").startswith(_UNSENT)


def _unavailable(call: Any) -> bool:
    """True when a finished call failed with UNAVAILABLE: how an idempotent call may be retried."""
    return call.code() is Code.UNAVAILABLE


def idempotent_methods(entries: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(full method names, service names) of ``entries``: ``/service/method`` or ``/service/*``.

    Raises ValueError naming the first entry of another form, TypeError if one is not a str (or if
    ``entries`` is itself a str, which would be read as its characters).
    """
    if isinstance(entries, str | bytes):
        raise TypeError(f"idempotent must be an iterable of method names, not {entries!r}")
    methods: set[str] = set()
    services: set[str] = set()
    for entry in entries:
        if not isinstance(entry, str):
            raise TypeError(f"idempotent: {entry!r} is not a str")
        parts = entry.split("/")
        if (
            len(parts) != 3
            or parts[0]
            or not parts[1]
            or not parts[2]
            or "*" in parts[1]
            or ("*" in parts[2] and parts[2] != "*")
            or any(c.isspace() for c in entry)
        ):
            raise ValueError(
                f"idempotent: {entry!r} is not of the form '/service/method' or '/service/*'"
            )
        if parts[2] == "*":
            services.add(parts[1])
        else:
            methods.add(entry)
    return frozenset(methods), frozenset(services)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class CallError(grpc.RpcError, grpc.Call, grpc.Future):  # type: ignore[misc]
    """A call that ended before it reached a server: no address, its deadline, or a closed channel.

    Like grpc's own errors it is at once the ``RpcError`` raised, a finished ``Call`` and
    ``Future``, and (returned by streaming calls) a response iterator that raises it.
    """

    def __init__(self, code: Any, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> Any:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def debug_error_string(self) -> str:
        return f"{self._code.name}: {self._details}"

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> CallError:
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return self.__traceback__

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def __iter__(self) -> CallError:
        return self

    def __next__(self) -> Any:
        raise self

    def __str__(self) -> str:
        return f"<CallError: status = {self._code}, details = {self._details!r}>"

    __repr__ = __str__


# -- the calls ----------------------------------------------------------------------------------


class _Method:
    """What each multicallable holds: the channel and grpc's arguments for one method."""

    def __init__(self, channel: BalancedChannel, spec: tuple[Any, ...]) -> None:
        self._channel = channel
        self._spec = spec
        self._unary_request = spec[0].startswith("unary")
        # How a failed attempt is told to be picked again, decided once per multicallable: only a
        # unary-unary call to an idempotent method may be repeated after a server may have seen it.
        self._repickable: Callable[[Any], bool] = (
            _unavailable if spec[0] == "unary_unary" and channel.is_idempotent(spec[1]) else unsent
        )

    def _on(self, subchannel: Subchannel) -> Any:
        return subchannel.multicallable(self._spec)


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
    ) -> Any:
        """The response; blocks until the call ends. Failures raise ``grpc.RpcError``."""
        return self._blocking(
            request, timeout, metadata, credentials, wait_for_ready, compression, False
        )

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
        return self._blocking(  # type: ignore[no-any-return]
            request, timeout, metadata, credentials, wait_for_ready, compression, True
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
        options = {"metadata": metadata, "credentials": credentials, "compression": compression}
        future = _UnaryFuture(self, request, _deadline(timeout), wait_for_ready, options)
        future.attempt(block=False)
        return future

    def _blocking(
        self,
        request: Any,
        timeout: float | None,
        metadata: Any,
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
        with_call: bool,
    ) -> Any:
        """Run the call; grpc's ``with_call`` result if ``with_call``, else grpc's ``__call__``'s.

        This is the path every blocking call takes, so it stays lean: grpc's plain ``__call__``
        (no ``grpc.Call`` object made when nobody asked for one) and ``put`` only when there is one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = bool(wait_for_ready)
        retry = wait and self._unary_request  # as _modes(), without the call
        repick = not wait and self._unary_request  # a fail-fast call that was never sent: once more
        if retry:  # run fail-fast on the subchannel; a call that could not connect is picked again
            wait_for_ready = False
        channel = self._channel
        spec = self._spec
        backoff = _RETRY_BACKOFF[0]
        while True:
            picked = channel.pick(wait, deadline)
            assert picked is not None
            subchannel, put = picked
            start = 0.0 if put is None else time.perf_counter()  # the latency is only for put
            try:
                multicallable = subchannel.multicallable(spec)
                # Positional, in the order grpc's unary- and stream-unary multicallables declare:
                # parsing six keywords cost a tenth of this channel's own time per call.
                result = (multicallable.with_call if with_call else multicallable)(
                    request,
                    None if deadline is None else max(deadline - time.monotonic(), 0.0),
                    metadata,
                    credentials,
                    wait_for_ready,
                    compression,
                )
            except grpc.RpcError as exc:
                report(put, exc.code(), time.perf_counter() - start, exc)
                if not (retry or repick) or not self._repickable(exc):
                    raise
                if not retry:  # fail-fast: one more pick, at once, on the next address
                    repick = False
                    continue
            except ValueError:  # grpc refuses a closed subchannel: the channel is closing
                error = closed_error()
                report(put, error.code(), 0.0, error)
                raise error from None
            else:
                if put is not None:
                    report(put, Code.OK, time.perf_counter() - start, None)
                return result
            finally:
                subchannel.release()
            channel.pause(backoff, deadline)
            backoff = min(backoff * 2, _RETRY_BACKOFF[1])

    def _modes(self, wait_for_ready: bool | None) -> tuple[bool, bool]:
        """(wait for a ready address, pick again when the subchannel could not connect)."""
        wait = bool(wait_for_ready)
        return wait, wait and self._unary_request


class _UnaryFuture(grpc.Call, grpc.Future):  # type: ignore[misc]
    """The future of a unary-response call: one or more attempts, then one outcome.

    The outcome is grpc's future of the last attempt, or a CallError. Attempts that must wait for a
    ready address run in a ``naming-channel-call`` thread; everything else runs without blocking.
    """

    def __init__(
        self,
        method: _UnaryResponse,
        request: Any,
        deadline: float | None,
        wait_for_ready: bool | None,
        options: dict[str, Any],
    ) -> None:
        self._method = method
        self._channel = method._channel
        self._request = request
        self._deadline = deadline
        self._wait, self._retry = method._modes(wait_for_ready)
        self._repick = not self._wait and method._unary_request  # once, for a call never sent
        self._options = {"wait_for_ready": False if self._retry else wait_for_ready, **options}
        self._cond = threading.Condition()
        self._outcome: Any = None  # grpc's future of the current attempt, then the outcome
        self._done = False
        self._cancelled = False
        self._callbacks: list[Callable[[], None]] = []
        self._backoff = _RETRY_BACKOFF[0]

    def attempt(self, block: bool) -> None:
        try:
            picked = self._channel.pick(self._wait, self._deadline, block=block)
        except CallError as failed:
            self._finish(failed)
            return
        if picked is None:
            self._again(0.0)
            return
        subchannel, put = picked
        if self.cancelled():  # while a thread waited for the pick
            subchannel.release()
            report(put, Code.CANCELLED, 0.0, None)
            return
        start = time.perf_counter()
        try:
            call = self._method._on(subchannel).future(
                self._request, timeout=_remaining(self._deadline), **self._options
            )
        except ValueError:  # grpc refuses a closed subchannel: the channel is closing
            subchannel.release()
            error = closed_error()
            report(put, error.code(), 0.0, error)
            self._finish(error)
            return
        except BaseException:
            subchannel.release()
            raise
        with self._cond:
            if not self._done:
                self._outcome = call  # so that cancel() reaches it
            cancelled = self._cancelled
        if cancelled:
            call.cancel()

        def attempt_done(call: Any) -> None:  # on grpc's thread: must not block
            subchannel.release()
            code = call.code()
            report(put, code, time.perf_counter() - start, None if code is Code.OK else call)
            if self._retry and not self._cancelled and self._method._repickable(call):
                self._again(self._backoff)
                self._backoff = min(self._backoff * 2, _RETRY_BACKOFF[1])
            elif self._repick and not self._cancelled and self._method._repickable(call):
                self._repick = False
                self._again(0.0)
            else:
                self._finish(call)

        call.add_done_callback(attempt_done)

    def _again(self, delay: float) -> None:
        def run() -> None:
            self._channel.pause(delay, self._deadline)
            try:
                self.attempt(block=True)
            except Exception as exc:
                log.exception("channel: a call failed in its pick thread")
                self._finish(CallError(Code.UNKNOWN, f"channel: {type(exc).__name__}: {exc}"))

        threading.Thread(target=run, name="naming-channel-call", daemon=True).start()

    def _finish(self, outcome: Any) -> None:
        with self._cond:
            if self._done:
                return
            self._outcome, self._done = outcome, True
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("channel: a call's done callback failed")

    def _result(self, timeout: float | None) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: self._done, timeout):
                raise grpc.FutureTimeoutError()
            return self._outcome

    # grpc.Future

    def cancel(self) -> bool:
        with self._cond:
            if self._done:
                return False
            self._cancelled = True
            call = self._outcome
        if call is not None:
            call.cancel()
        self._finish(CallError(Code.CANCELLED, "Locally cancelled by application!"))
        return True

    def cancelled(self) -> bool:
        return self._cancelled

    def running(self) -> bool:
        return not self._done

    def done(self) -> bool:
        return self._done

    def result(self, timeout: float | None = None) -> Any:
        outcome = self._result(timeout)
        if self._cancelled:
            raise grpc.FutureCancelledError()
        return outcome.result()

    def exception(self, timeout: float | None = None) -> Any:
        outcome = self._result(timeout)
        if self._cancelled:
            raise grpc.FutureCancelledError()
        return outcome.exception()

    def traceback(self, timeout: float | None = None) -> Any:
        outcome = self._result(timeout)
        if self._cancelled:
            raise grpc.FutureCancelledError()
        return outcome.traceback()

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        with self._cond:
            if not self._done:
                self._callbacks.append(lambda: fn(self))
                return
        fn(self)

    # grpc.Call (these wait for the outcome)

    def initial_metadata(self) -> Any:
        return self._result(None).initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._result(None).trailing_metadata()

    def code(self) -> Any:
        return self._result(None).code()

    def details(self) -> Any:
        return self._result(None).details()

    def is_active(self) -> bool:
        return not self._done

    def time_remaining(self) -> float | None:
        return _remaining(self._deadline)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._cond:
            if self._done:
                return False
            self._callbacks.append(callback)
            return True


class _StreamResponse(_Method):
    """``__call__`` of unary-stream and stream-stream methods: one pick per stream.

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
        deadline = _deadline(timeout)
        try:
            picked = self._channel.pick(bool(wait_for_ready), deadline)
        except CallError as failed:
            return failed
        assert picked is not None
        subchannel, put = picked
        start = time.perf_counter()
        try:
            call = self._on(subchannel)(
                request,
                timeout=_remaining(deadline),
                metadata=metadata,
                credentials=credentials,
                wait_for_ready=wait_for_ready,
                compression=compression,
            )
        except ValueError:  # grpc refuses a closed subchannel: the channel is closing
            subchannel.release()
            error = closed_error()
            report(put, error.code(), 0.0, error)
            return error
        except BaseException:
            subchannel.release()
            raise

        def stream_done(call: Any) -> None:  # on grpc's thread
            subchannel.release()
            code = call.code()
            report(put, code, time.perf_counter() - start, None if code is Code.OK else call)

        call.add_done_callback(stream_done)
        return call


class UnaryUnary(_UnaryResponse, grpc.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """A unary-unary method of a BalancedChannel."""


class StreamUnary(_UnaryResponse, grpc.StreamUnaryMultiCallable):  # type: ignore[misc]
    """A stream-unary method of a BalancedChannel (its requests cannot be replayed: no re-pick)."""


class UnaryStream(_StreamResponse, grpc.UnaryStreamMultiCallable):  # type: ignore[misc]
    """A unary-stream method of a BalancedChannel."""


class StreamStream(_StreamResponse, grpc.StreamStreamMultiCallable):  # type: ignore[misc]
    """A stream-stream method of a BalancedChannel."""
