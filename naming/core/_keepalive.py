"""The keepalive loop every registration runs, written once for every registry backend.

A registration's thread wakes every ``interval`` (ttl/3), or at once when ``wake`` is set, and
calls ``keep()``: one round of "the record is there, alive, with our value". Registry trouble
(BackendUnavailableError) is retried for ever, sooner than the interval, with a jittered backoff;
one warning when an outage starts and one info line when it ends. A refusal (any other
NamingError) is logged and handed to ``refused()``, which pauses the registration until
``resume()``: retrying what the registry refuses would be a storm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import BackendUnavailableError, NamingError
from ._backoff import Backoff

__all__ = ["keepalive"]


def keepalive(
    keep: Callable[[], None],
    *,
    component: str,
    label: str,
    interval: float,
    wake: threading.Event,
    stopping: threading.Event,
    backoff: Backoff,
    refused: Callable[[NamingError], None],
    logger: logging.Logger,
    active: Callable[[], bool] = lambda: True,
) -> None:
    """Run ``keep()`` every ``interval`` seconds until ``stopping`` is set (see the module doc).

    ``label`` names the record in the log (its key, path or service id), ``component`` the
    backend (``"etcd"``); ``active()`` says whether an outage is worth a warning (not while the
    registration is paused or closing).
    """
    delay = interval
    in_outage = False
    while not stopping.is_set():
        wake.wait(delay)
        wake.clear()
        if stopping.is_set():
            return
        try:
            keep()
        except BackendUnavailableError as exc:
            if stopping.is_set():
                return
            if not in_outage and active():
                logger.warning("%s; retrying to keep %s registered", exc, label)
                in_outage = True
            delay = min(backoff.next(), interval)
            continue
        except NamingError as exc:
            if stopping.is_set():
                return
            logger.error("%s; %s stays unregistered until resume()", exc, label)
            refused(exc)
        if in_outage:
            logger.info("%s: %s is registered again", component, label)
            in_outage = False
        backoff.reset()
        delay = interval
