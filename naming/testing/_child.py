"""The bookkeeping under :mod:`naming.testing.process`: live processes and what a child gives back.

Kept apart from :class:`~naming.testing.process.ManagedProcess` so that the finalizer holds only a
:class:`_Child` (never the ManagedProcess itself) and the registry stays cheap to read.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .process import ManagedProcess

__all__ = [
    "Child",
    "LogFile",
    "default_timeout",
    "live_processes",
    "next_serial",
    "process_state",
    "track",
    "untrack",
]

logger = logging.getLogger("naming.testing.process")


def default_timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    # From the module that defines it, not the package: the package's __init__ imports this one.
    from ._wait import DEFAULT_TIMEOUT

    return DEFAULT_TIMEOUT


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc (``T`` when stopped), or None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


# -- the live ones --------------------------------------------------------------------------------

_live_lock = threading.Lock()
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_serials = itertools.count(1)


def next_serial() -> int:
    """A number that orders ManagedProcess launches."""
    with _live_lock:
        return next(_serials)


def track(process: ManagedProcess) -> None:
    with _live_lock:
        _live.add(process)


def untrack(process: ManagedProcess) -> None:
    with _live_lock:
        _live.discard(process)


def live_processes() -> list[ManagedProcess]:
    """The ManagedProcess objects whose child is running now (paused ones too), in launch order.

    Cheap (one non-blocking ``waitpid`` per listed process) and safe to call from any thread.
    """
    with _live_lock:
        listed = list(_live)
    running = sorted((p for p in listed if p.running), key=lambda p: p._serial)
    with _live_lock:
        for process in listed:
            if process not in running:
                _live.discard(process)
    return running


# -- what must be given back ---------------------------------------------------------------------


class Child:
    """The process and the temp dir of a ManagedProcess, released even if nobody closes it."""

    def __init__(self, name: str, owned_dir: Path | None) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.owned_dir = owned_dir

    def poll(self) -> int | None:
        """The exit code once the child has exited (reaping it), else None; None if never run."""
        proc = self.proc
        if proc is None:
            return None
        unreaped = proc.returncode is None
        code = proc.poll()
        if unreaped and code is not None:
            self._kill_stragglers(proc.pid)
        return code

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit; subprocess.TimeoutExpired after ``timeout`` seconds."""
        proc = self.proc
        assert proc is not None
        unreaped = proc.returncode is None
        code = proc.wait(timeout)
        if unreaped:
            self._kill_stragglers(proc.pid)
        return code

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's process group, while the child is not yet reaped."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return  # reaped: its pid and group id may belong to another process by now
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # some systems refuse a group of zombies; the leader still counts
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    @staticmethod
    def _kill_stragglers(pid: int) -> None:
        # Called right after the leader was reaped: what is left of its group (started by it and
        # not gone with it) still holds the group id, so the id cannot name anyone else yet.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    def release(self) -> None:
        """Kill the child's group if it still runs, remove an owned directory. Idempotent."""
        proc = self.proc
        if proc is not None and self.poll() is None:
            logger.warning("process: killing leftover %s (pid %d)", self.name, proc.pid)
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(default_timeout(None))
        self.proc = None
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)
            self.owned_dir = None


class LogFile:
    """The file a child's stdout and stderr are appended to, run after run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, since: int = 0, max_bytes: int | None = None) -> str:
        """The text from offset ``since`` (at most its last ``max_bytes``), decoded leniently."""
        try:
            with self.path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = since if max_bytes is None else max(since, size - max_bytes)
                log.seek(start)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int, since: int = 0) -> str:
        return "\n".join(self.read(since, max_bytes=lines * 2048).splitlines()[-lines:])
