"""The thread that feeds a balancer from its resolver, and resolves again when the watcher fails.

A watcher raises only when it cannot recover (``Watcher.next`` contract). A balancer must not
freeze its list for good when that happens: the loop keeps the last list, records the error (the
channel names it in its UNAVAILABLE details), waits a jittered backoff and asks the resolver for a
new watcher. That watcher's first batch is the whole set, so it *replaces* the list: addresses that
went away while the old watcher was broken are removed, not kept for ever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from naming.core import Backoff, RegistryWatcher, Resolver, Update, Watcher, WatcherClosedError

__all__ = ["ResolverLoop"]


_JOIN_TIMEOUT = 5.0
RESOLVE_BACKOFF = (0.1, 5.0)  # first and longest pause before resolving again

Apply = Callable[[list[Update], bool], None]
"""``apply(updates, replace)``: a batch for the balancer; ``replace`` for a new watcher's first."""


class ResolverLoop:
    """Runs ``watcher.next()`` on a ``naming-watch-NAME`` thread and hands each batch to ``apply``.

    ``close()`` stops it (and closes the current watcher); ``error`` is the last failure of a
    watcher or of a new ``resolve()``, None again once a batch came through, or else the outage a
    registry watcher is riding out (``RegistryWatcher.outage``).
    """

    def __init__(
        self,
        name: str,
        resolver: Resolver,
        target: str,
        watcher: Watcher,
        apply: Apply,
        *,
        backoff: Backoff | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._name = name
        self._resolver = resolver
        self._target = target
        self._apply = apply
        self._backoff = backoff or Backoff(*RESOLVE_BACKOFF)
        self._log = logger or logging.getLogger("naming.balancers")
        self._lock = threading.Lock()
        self._watcher: Watcher | None = watcher
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"naming-watch-{name}", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        if self._error is not None:
            return self._error
        watcher = self._watcher
        return watcher.outage if isinstance(watcher, RegistryWatcher) else None

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT)

    def _run(self) -> None:
        replace = False
        while not self._stopping.is_set():
            with self._lock:
                watcher = self._watcher
            if watcher is None:
                return
            try:
                updates = watcher.next()
            except WatcherClosedError as exc:
                if self._stopping.is_set():
                    return
                self._failed(watcher, exc)
            except Exception as exc:
                self._failed(watcher, exc)
            else:
                self._apply(updates, replace)
                replace = False
                self._error = None
                self._backoff.reset()
                continue
            replace = self._resolve_again()

    def _failed(self, watcher: Watcher, error: BaseException) -> None:
        self._error = error
        self._log.warning(
            "%s: the watcher of %s failed (%s: %s); keeping the last addresses and resolving again",
            self._name,
            self._target,
            type(error).__name__,
            error,
        )
        try:
            watcher.close()
        except Exception:
            self._log.debug("%s: closing the failed watcher raised", self._name, exc_info=True)

    def _resolve_again(self) -> bool:
        """Wait a backoff, then a new watcher; True once there is one (its first batch replaces)."""
        while not self._stopping.wait(self._backoff.next()):
            try:
                watcher = self._resolver.resolve(self._target)
            except Exception as exc:
                self._error = exc
                self._log.warning(
                    "%s: resolving %s again failed: %s", self._name, self._target, exc
                )
                continue
            with self._lock:
                if self._stopping.is_set():
                    watcher.close()
                    return False
                self._watcher = watcher
            return True
        return False
