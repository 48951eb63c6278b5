"""The keepalive loop every registration runs, written once for every registry backend.

A registration's thread wakes every ``interval`` (ttl/3), or at once when ``wake`` is set, and
calls ``keep()``: one round of "the record is there, alive, with our value". Registry trouble
(BackendUnavailableError) is retried for ever, sooner than the interval, with a jittered backoff;
one warning when an outage starts and one info line when it ends. A refusal (any other
NamingError) is logged and handed to ``refused()``, which pauses the registration until
``resume()``: retrying what the registry refuses would be a storm. :class:`KeptRegistration` is
the registration around that loop: its pause, resume and close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailableError, NamingError
from ._backend import Registration
from ._backoff import Backoff

__all__ = ["KeptRegistration", "keepalive"]


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


class KeptRegistration(Registration):
    """A registration that a thread keeps alive with :func:`keepalive`: the bookkeeping of
    ``pause()``, ``resume()`` and ``close()`` written once for every registry backend.

    A subclass sets ``address``, ``ttl``, ``close_timeout`` and calls :meth:`_setup` in its
    constructor, then :meth:`_start` once it can make the first round. It implements:

    * ``_keep()``: one round (the record is there, alive, with our value); it may check
      :meth:`_active` and take ``self._lock`` for its own state, but makes no call under it;
    * ``_withdraw(why, taken)``: remove the record, ``why`` being ``"pause"`` or ``"close"``, within
      ``close_timeout``, logging (not raising) when the registry does not answer;
    * ``_release()``: close the registry client (after ``close()``'s withdraw, and when the first
      round is refused);
    * optionally ``_take()``: called under the lock as ``pause()`` or ``close()`` begins, its
      result handed to ``_withdraw`` (etcd takes its lease there, so that no round uses it again).
    """

    ttl: float
    close_timeout: float

    def _setup(self, component: str, label: str, backoff: Backoff, logger: logging.Logger) -> None:
        """``component`` (``"etcd"``) and ``label`` (the key, path or id) name it in messages."""
        self._component = component
        self._label = label
        self._backoff = backoff
        self._log = logger
        self._lock = threading.Lock()
        self._paused = False
        self._closed = False
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def _start(self, thread_name: str, registry: str) -> None:
        """The first round now, then the thread. Registry trouble is only a warning (the thread
        registers once ``registry`` answers); a refusal releases the client and raises."""
        try:
            self._keep()
        except BackendUnavailableError as exc:
            self._log.warning(
                "%s; %s will be registered once %s answers", exc, self._label, registry
            )
        except NamingError:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def pause(self) -> None:
        with self._lock:
            self._check_open()
            if self._paused:
                return
            self._paused = True
            taken = self._take()
        self._withdraw("pause", taken)

    def resume(self) -> None:
        with self._lock:
            self._check_open()
            self._paused = False
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            taken = self._take()
            self._stopping.set()
            self._wake.set()
        deadline = time.monotonic() + self.close_timeout
        self._withdraw("close", taken)
        self._release()  # ends a call the keepalive thread may be waiting in
        if self._thread is not threading.current_thread():
            self._thread.join(max(deadline - time.monotonic(), 0.1))

    def _keep(self) -> None:
        raise NotImplementedError

    def _take(self) -> Any:
        return None

    def _withdraw(self, why: str, taken: Any) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        keepalive(
            self._keep,
            component=self._component,
            label=self._label,
            interval=self.ttl / 3,
            wake=self._wake,
            stopping=self._stopping,
            backoff=self._backoff,
            refused=self._refused,
            logger=self._log,
            active=self._active,
        )

    def _refused(self, error: NamingError) -> None:
        """The registry refused for good: paused until ``resume()`` tries again."""
        with self._lock:
            self._paused = True

    def _active(self) -> bool:
        """True unless paused or closed: a round has a record to keep."""
        with self._lock:
            return not (self._paused or self._closed)

    def _check_open(self) -> None:
        if self._closed:
            raise NamingError(f"{self._component}: the registration of {self._label} is closed")
