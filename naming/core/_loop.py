"""RegistryWatcher: the outage loop every registry backend's watcher runs, written once.

A registry watcher reads the whole set (a snapshot), then follows changes (a watch). The registry
goes away now and then; what the balancer needs then is the last set it knew, kept, and on the way
back only the difference. The loop, on its own ``naming-{name}-watch-{label}`` thread::

    snapshot()                       publish() the whole set; the consumer sees only the difference
    watch()                          apply changes; returns when the position is lost
      BackendUnavailableError    ->  keep the set, back off (jittered, cut short by close()), then
                                     watch() again, or snapshot() first if the position is lost
      any other NamingError      ->  the watcher fails: next() raises it
"""

from __future__ import annotations

import logging
import threading

from ..errors import BackendUnavailableError, NamingError
from ._backoff import Backoff
from ._watch import SnapshotWatcher

__all__ = ["RegistryWatcher"]

log = logging.getLogger("naming.watch")


class RegistryWatcher(SnapshotWatcher):
    """A SnapshotWatcher kept up to date from a registry by the loop in the module docstring.

    A backend subclasses it and provides:

    * ``snapshot()``: read the whole set and ``publish()`` it.
    * ``watch()``: block, applying changes with ``add()``/``discard()``/``publish()``. Return when
      the registry says the position is lost (a new snapshot follows at once); raise
      BackendUnavailableError when the registry cannot be reached, another NamingError when it
      refuses for good. Call ``resumed()`` once the watch is established.
    * optionally ``interrupt()``: make a blocked ``watch()`` end soon (cancel its stream); called
      by ``close()`` from another thread. And ``release()``: free clients once the loop has ended.

    It then calls ``start()`` at the end of its ``__init__``. Guarantees: one WARNING at the start
    of an outage (``"{error}; keeping the last N addresses"``), DEBUG for the failures after it, one
    INFO when it ends; the set is never emptied by an outage; the backoff (``backoff``, by default
    0.1 s doubling to 3 s) is reset by every snapshot and every ``resumed()``; ``close()`` ends the
    loop, a backoff wait included, and joins the thread (up to ``join_timeout`` seconds). An error
    that is not a NamingError is a bug: it is logged with its traceback and fails the watcher.
    ``outage`` is the last BackendUnavailableError of the outage in progress, None outside one (a
    consumer can say why it has no address while the watcher rides an outage out).
    """

    def __init__(
        self,
        name: str,
        label: str,
        *,
        backoff: Backoff | None = None,
        logger: logging.Logger | None = None,
        join_timeout: float = 10.0,
    ) -> None:
        super().__init__(name=name, on_close=self._stop)
        self.label = label
        self._backoff = backoff if backoff is not None else Backoff()
        self._log = logger if logger is not None else log
        self._join_timeout = join_timeout
        self._stopping = threading.Event()
        self._synced = False
        self._in_outage = False
        self.outage: BackendUnavailableError | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"naming-{name}-watch-{label}", daemon=True
        )

    # -- what a backend provides ---------------------------------------------------------------

    def snapshot(self) -> None:
        """Read the whole set and ``publish()`` it."""
        raise NotImplementedError

    def watch(self) -> None:
        """Apply changes until the position is lost (return) or the registry fails (raise)."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Make a blocked ``watch()`` or ``snapshot()`` end soon; ``close()`` calls it."""

    def release(self) -> None:
        """Free what the loop used (clients, sessions); called once, after the loop has ended."""

    # -- what the loop offers a backend ----------------------------------------------------------

    def start(self) -> None:
        """Start the loop's thread; call it once, at the end of the subclass's ``__init__``."""
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """True once ``close()`` was called: the loop is ending."""
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if ``close()`` comes first; True when the watcher is closing."""
        return self._stopping.wait(seconds)

    def resumed(self) -> None:
        """The watch is established: ends an outage and resets the backoff."""
        self._backoff.reset()
        self.outage = None
        if self._in_outage:
            self._in_outage = False
            self._log.info("%s: watching %s again", self._name, self.label)

    def resync(self) -> None:
        """The position is lost: the next round starts with a snapshot (call it, then raise)."""
        self._synced = False

    # -- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._synced:
                    self.snapshot()
                    self._synced = True
                    self.resumed()
                self.watch()
                self._synced = False  # the position is lost: a new snapshot, at once
            except BackendUnavailableError as exc:
                if self._stopping.is_set():
                    return
                self.outage = exc
                if self._in_outage:
                    self._log.debug("%s", exc)
                else:
                    self._in_outage = True
                    self._log.warning("%s; keeping the last %d addresses", exc, self._size())
                self._stopping.wait(self._backoff.next())
            except NamingError as exc:
                if not self._stopping.is_set():
                    self._log.error("%s; the watcher gives up", exc)
                    self.fail(exc)
                return
            except Exception as exc:
                if not self._stopping.is_set():
                    self._log.exception("%s: the watcher of %s failed", self._name, self.label)
                    self.fail(NamingError(f"{self._name}: the watcher failed: {exc!r}"))
                return

    def _size(self) -> int:
        with self._cond:
            return len(self._latest)

    def _stop(self) -> None:
        self._stopping.set()
        self.interrupt()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._join_timeout)
        self.release()
