"""The dns backend's watcher: a RegistryWatcher that re-resolves on the TTL, and on demand.

Rounds: resolve, ``publish()`` the answer (the consumer sees only what changed, so an unchanged
answer emits nothing), then wait ``clamp(ttl, min_interval, max_interval)`` (``min_interval`` when
the answer has no TTL) or until ``resolve_now()``. A timeout or SERVFAIL is the kit's outage: the set
is kept and the round retried with the kit's backoff. NXDOMAIN or an empty answer is reported (one
WARNING, and ``outage`` for the channel's UNAVAILABLE detail); after a good answer the set is kept
for ``grace`` seconds, then emptied. A name that never resolved is empty at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from naming.core import BackendUnavailableError, RegistryWatcher

from ._dns_lookup import Answer, NameNotFound

__all__ = ["DnsSettings", "DnsWatcher"]

log = logging.getLogger("naming.dns")


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """Re-resolution pacing: the TTL floor, its ceiling, and how long a missing name is kept."""

    min_interval: float = 30.0
    max_interval: float = 1800.0
    grace: float = 30.0

    def interval(self, ttl: float | None) -> float:
        """How long an answer with ``ttl`` is used before the next lookup."""
        if ttl is None:
            return self.min_interval
        return max(self.min_interval, min(ttl, self.max_interval))


class DnsWatcher(RegistryWatcher):
    """Follows one DNS name; see the module docstring for the rules of each round."""

    def __init__(
        self,
        lookup: Callable[[], Answer],
        label: str,
        settings: DnsSettings,
        *,
        release: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("dns", label, logger=log)
        self._lookup = lookup
        self._settings = settings
        self._release = release
        self._clock = clock
        self._wake = threading.Event()
        self._due = 0.0
        self._good = False  # a good answer was published since the name last went missing
        self._missing_since: float | None = None
        self._missing: NameNotFound | None = None
        self._last_now = -float("inf")
        self._lock = threading.Lock()
        self._rounds_done = threading.Condition()
        self.rounds = 0  # lookups finished (answered, missing or failed), for tests and the bench
        self.start()

    @property
    def outage(self) -> BackendUnavailableError | None:
        """The outage in progress, or why the name is missing (NXDOMAIN, no record)."""
        if self._outage is not None:
            return self._outage
        if self._missing is not None:
            return BackendUnavailableError(str(self._missing))
        return None

    @outage.setter
    def outage(self, value: BackendUnavailableError | None) -> None:
        self._outage = value

    def resolve_now(self) -> bool:
        """Re-resolve at once, at most once per ``min_interval``; True when a round was started."""
        with self._lock:
            now = self._clock()
            if now - self._last_now < self._settings.min_interval:
                return False
            self._last_now = now
            self._due = now
        self._wake.set()
        return True

    def wait_rounds(self, count: int, timeout: float) -> bool:
        """Block until ``count`` lookups have finished, or ``timeout``; True when they have."""
        with self._rounds_done:
            return self._rounds_done.wait_for(lambda: self.rounds >= count, timeout)

    # -- the kit's halves ------------------------------------------------------------------------

    def snapshot(self) -> None:
        self._round()

    def watch(self) -> None:
        while not self.stopping:
            delay = self._due - self._clock()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue  # the due time, or resolve_now() moved it: look again
            self._round()
            if self._missing is None:
                self.resumed()

    def interrupt(self) -> None:
        self._wake.set()

    def release(self) -> None:
        if self._release is not None:
            self._release()

    # -- one round -------------------------------------------------------------------------------

    def _round(self) -> None:
        try:
            self._resolve_once()
        finally:
            with self._rounds_done:
                self.rounds += 1
                self._rounds_done.notify_all()

    def _resolve_once(self) -> None:
        now = self._clock()
        try:
            answer = self._lookup()
        except NameNotFound as exc:
            self._not_found(exc, now)
            return
        except BackendUnavailableError:
            self._due = 0.0  # after the kit's backoff, retry at once
            raise
        if self._missing is not None:
            log.info("dns: %s resolves again (%d addresses)", self.label, len(answer.addresses))
        self._missing = None
        self._missing_since = None
        self._good = True
        self.publish(answer.addresses)
        self._due = now + self._settings.interval(answer.ttl)

    def _not_found(self, exc: NameNotFound, now: float) -> None:
        settings = self._settings
        if self._missing is None:
            self._missing_since = now
            if self._good:
                log.warning(
                    "%s; keeping the last %d addresses for %g s", exc, self._size(), settings.grace
                )
            else:
                log.warning("%s", exc)
        else:
            log.debug("%s", exc)
        self._missing = exc
        since = self._missing_since if self._missing_since is not None else now
        left = settings.grace - (now - since)
        if not self._good or left <= 0:
            if self._good:
                log.info("dns: %s: emptied after %g s without an answer", self.label, now - since)
            self._good = False
            self.publish([])
            self._due = now + settings.min_interval
        else:
            self._due = now + min(settings.min_interval, left)
