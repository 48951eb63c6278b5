"""UnaryFuture: the ``future()`` of a unary-response call, driving the call policy without blocking.

The first pick is made on the caller's thread without blocking; a pick that would wait, and every
pick after a pause, runs in a short-lived ``naming-channel-call`` thread. Each attempt is grpc's
own future; its outcome is reported to ``put`` and decided (:meth:`CallPolicy.after`) in grpc's
done callback, which never blocks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from balancers import PickInfo

from ._attempt import abandon, attempt_done, start_attempt
from ._errors import CallError
from ._policy import CallPolicy, remaining

if TYPE_CHECKING:
    from ._channel import BalancedChannel

__all__ = ["UnaryFuture"]

log = logging.getLogger(__name__)

Code = grpc.StatusCode


class UnaryFuture(grpc.Call, grpc.Future):  # type: ignore[misc]
    """The future of a unary-response call: one or more attempts, then one outcome.

    The outcome is grpc's future of the last attempt, or a CallError. ``cancel()`` cancels the
    attempt running, or ends the call before its next pick.
    """

    def __init__(
        self,
        channel: BalancedChannel,
        policy: CallPolicy,
        spec: tuple[Any, ...],
        request: Any,
        deadline: float | None,
        wait: bool,
        info: PickInfo,
        options: dict[str, Any],
        timeout: float | None = None,
    ) -> None:
        self._channel = channel
        self._policy = policy
        self._spec = spec
        self._request = request
        self._deadline = deadline
        self._timeout = timeout  # the call's own, for the details of a deadline
        self._wait = wait
        self._info = info
        self._options = options  # grpc's keyword arguments of every attempt
        self._attempts = 0
        self._cond = threading.Condition()
        self._outcome: Any = None  # grpc's future of the current attempt, then the outcome
        self._done = False
        self._cancelled = False
        self._callbacks: list[Callable[[], None]] = []

    def attempt(self, block: bool) -> None:
        """Pick and start one attempt; with ``block=False``, a pick that must wait goes to a thread."""
        if self.cancelled():  # before a pick in a thread
            return
        try:
            picked = self._channel.pick(
                self._policy, self._info, self._wait, self._deadline, block, self._timeout
            )
        except CallError as failed:
            self._finish(failed)
            return
        if picked is None:
            self._again(0.0)
            return
        subchannel, put = picked
        if self.cancelled():  # while a thread waited for the pick: the call never ran
            subchannel.release()
            abandon(put)
            return
        start = time.perf_counter()
        call = start_attempt(
            subchannel,
            put,
            lambda: subchannel.multicallable(self._spec).future(
                self._request, timeout=remaining(self._deadline), **self._options
            ),
        )
        if isinstance(call, CallError):
            self._finish(call)
            return
        with self._cond:
            if not self._done:
                self._outcome = call  # so that cancel() reaches it
            cancelled = self._cancelled
        if cancelled:
            call.cancel()

        def finished(call: Any) -> None:  # on grpc's thread: must not block
            self._decide(call, attempt_done(subchannel, put, start, call))

        call.add_done_callback(finished)

    def _decide(self, call: Any, code: Any) -> None:
        """After an attempt (``call``, ended with ``code``): finish with it, or pick again."""
        self._attempts += 1
        delay = None
        if code is not Code.OK and not self._cancelled:
            delay = self._policy.after(call, self._wait, self._attempts)
        if delay is None:
            self._finish(call)
        else:
            self._again(delay)

    def _again(self, delay: float) -> None:
        def run() -> None:
            self._channel.pause(delay, self._deadline)
            try:
                self.attempt(block=True)
            except Exception as exc:
                log.exception("channel: a call failed in its pick thread")
                self._finish(CallError(Code.INTERNAL, f"channel: {type(exc).__name__}: {exc}"))

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
        return remaining(self._deadline)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._cond:
            if self._done:
                return False
            self._callbacks.append(callback)
            return True
