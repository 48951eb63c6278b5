"""CallError: a call that ended before it reached a server; closed_error(): a closed channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["CallError", "closed_error"]

Code = grpc.StatusCode


def closed_error() -> CallError:
    """The error of a call made on, or still waiting in, a closed channel: CANCELLED."""
    return CallError(Code.CANCELLED, "channel: the channel is closed")


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
