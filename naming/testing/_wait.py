"""The two timeouts of the test kit and the one bounded wait that every helper uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from naming.core import DeadlineExceededError

__all__ = ["DEFAULT_TIMEOUT", "SHORT_TIMEOUT", "wait_until"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""How long to wait for something that must happen (grpc-go's defaultTestTimeout)."""

SHORT_TIMEOUT = 0.05
"""How long to wait to show that something does not happen (grpc-go's defaultTestShortTimeout)."""


def wait_until(
    condition: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    message: str = "condition",
    interval: float = 0.005,
    *,
    what: str | None = None,
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns a truthy value; return that.

    ``condition`` is called at least once, even with ``timeout=0``. When ``timeout`` seconds pass
    without a truthy value, raise DeadlineExceededError("testing: <message> not met within ...").
    ``what`` is another name for ``message`` (the name the gRPC server harness used).
    """
    label = what if what is not None else message
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DeadlineExceededError(f"testing: {label} not met within {timeout}s")
        time.sleep(interval)
