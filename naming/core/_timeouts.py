"""One reading of a ``timeout=`` argument for every blocking call of the library."""

from __future__ import annotations

import math

__all__ = ["as_timeout"]


def as_timeout(timeout: float | None, owner: str) -> float | None:
    """``timeout`` as what ``threading.Condition.wait_for`` takes: None (wait for ever) for None
    and for infinity, the number itself otherwise (zero or less: do not wait).

    TypeError for anything that is not a real number (a bool included), ValueError for NaN; both
    name ``owner``, the component whose call it was.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"{owner}: timeout must be a number of seconds or None, got {type(timeout).__name__}"
        )
    if math.isnan(timeout):
        raise ValueError(f"{owner}: timeout must be a number of seconds or None, got nan")
    if math.isinf(timeout):
        return None if timeout > 0 else 0.0
    return timeout
