"""ManagedProcess: one child process of a real server for tests, on free loopback ports.

The harness under :mod:`naming.testing.etcd`, and the one a backend author writes for a server of
their own. A command is built from ports chosen free on 127.0.0.1; the process runs in a process
group of its own with stdout and stderr appended to a log file; a caller-given health check says
when it is ready, within a bounded wait::

    def command(proc):
        return ["my-server", f"--listen=127.0.0.1:{proc.port}", f"--data={proc.workdir}/data"]

    def healthy(proc):
        return accepts_connections(proc.port)

    with ManagedProcess(command, healthy=healthy, name="my-server") as server:
        server.start()               # ProcessError with the log tail if it never gets healthy
        server.pause()               # SIGSTOP: sockets stay open, nothing answers
        server.resume()              # SIGCONT
        server.kill()                # SIGKILL, then restart() on the same ports and workdir
        server.restart()

Nothing outlives the interpreter: a process that nobody stopped is killed (with its group) when its
object is collected or at exit. :func:`live_processes` lists those still running, for leak checks.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from naming.core import Closeable

from ._child import (
    Child,
    LogFile,
    default_timeout,
    live_processes,
    next_serial,
    process_state,
    track,
    untrack,
)
from ._ports import HOST, accepts_connections, free_ports

__all__ = [
    "HOST",
    "POLL_INTERVAL",
    "ExitedEarlyError",
    "ManagedProcess",
    "NotHealthyError",
    "ProcessError",
    "accepts_connections",
    "free_ports",
    "live_processes",
    "says_port_in_use",
]

_log = logging.getLogger(__name__)

POLL_INTERVAL = 0.02
"""Seconds between two health checks while :meth:`ManagedProcess.wait_healthy` waits."""

_P = TypeVar("_P", bound="ManagedProcess")


class ProcessError(RuntimeError):
    """A managed process did not start, stop or answer as expected; the message has its log tail."""


class ExitedEarlyError(ProcessError):
    """The process exited before its health check passed (``port_in_use``: its log says why)."""

    def __init__(self, message: str, *, returncode: int, tail: str, port_in_use: bool) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.tail = tail
        self.port_in_use = port_in_use


class NotHealthyError(ProcessError):
    """The process kept running but its health check did not pass in time (it was killed)."""

    def __init__(self, message: str, *, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


def says_port_in_use(run_log: str) -> bool:
    """The default reading of a failed run's log: EADDRINUSE, as most servers word it."""
    return "address already in use" in run_log.lower()


# -- the process ---------------------------------------------------------------------------------


class ManagedProcess(Closeable):
    """One child process of a real server, run as ``command(process)``, ready when ``healthy``.

    ``command`` is called at every launch: it reads :attr:`ports` and :attr:`workdir` (and may
    write a config file there) and returns the argv. ``ports``: how many free 127.0.0.1 ports to
    choose (kept across restarts; if one turns out to be taken on the first start, :meth:`start`
    retries once on fresh ones), or the ports to use as given. ``workdir`` is the child's cwd and
    holds its log; without one a temporary directory is made and removed by :meth:`close`. ``env``
    replaces the environment (default: inherited). ``healthy(process)`` is polled every
    :data:`POLL_INTERVAL` seconds and must not block for long. ``port_in_use(run_log)`` tells from
    a failed run's log that a port was taken. ``banner(process)`` is the line written to the log
    before each run. ``component`` starts every error message (``"etcd"`` gives ``"etcd: ..."``).
    Not thread-safe, except :attr:`running`, :attr:`pid` and :func:`live_processes`.
    """

    def __init__(
        self,
        command: Callable[[ManagedProcess], Sequence[str]],
        *,
        healthy: Callable[[ManagedProcess], bool],
        name: str = "server",
        ports: int | Sequence[int] = 1,
        workdir: Path | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        port_in_use: Callable[[str], bool] = says_port_in_use,
        banner: Callable[[ManagedProcess], str] | None = None,
        component: str = "process",
    ) -> None:
        self.name = name
        self.component = component
        self._command = command
        self._healthy = healthy
        self._port_in_use = port_in_use
        self._banner = banner
        self._env = dict(env) if env is not None else None
        self._chosen_ports = isinstance(ports, int)
        self._ports = tuple(free_ports(ports)) if isinstance(ports, int) else tuple(ports)
        owned = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix=f"naming-{component}-"))
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path if log_path is not None else self.workdir / f"{name}.log"
        self._log = LogFile(self.log_path)
        self._serial = 0  # set at each launch: live_processes() lists in launch order
        self._healthy_once = False
        self._paused = False
        self._closed = False
        self._run_offset = 0
        self._launched_at = 0.0
        self._child = Child(name, self.workdir if owned else None)
        self._finalizer = weakref.finalize(self, self._child.release)

    # -- state

    @property
    def ports(self) -> tuple[int, ...]:
        return self._ports

    @property
    def port(self) -> int:
        """The first port."""
        return self._ports[0]

    @property
    def running(self) -> bool:
        return self._child.proc is not None and self._child.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    @property
    def pid(self) -> int | None:
        proc = self._child.proc
        return proc.pid if proc is not None and self._child.poll() is None else None

    @property
    def has_been_healthy(self) -> bool:
        """Whether a run of this process passed its health check (then ports never change)."""
        return self._healthy_once

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<ManagedProcess {self.name} {state} pid={self.pid} ports={list(self._ports)}>"

    def choose_ports(self) -> tuple[int, ...]:
        """Move to as many fresh free ports (before a start, e.g. after a port was taken)."""
        if self.running:
            raise ProcessError(f"{self.component}: cannot move {self.name}: it is running")
        self._ports = tuple(free_ports(len(self._ports)))
        return self._ports

    # -- life cycle

    def start(self: _P, timeout: float | None = None, *, retry_ports: bool = True) -> _P:
        """Launch and return once healthy; ExitedEarlyError or NotHealthyError (with the log) if not.

        Until a run has been healthy once, a run that fails on a taken port is retried once on
        fresh ports (ports chosen here, not given, and ``retry_ports``). Later starts keep them.
        """
        deadline = time.monotonic() + default_timeout(timeout)
        retry = retry_ports and self._chosen_ports and not self._healthy_once
        self.launch()
        try:
            self._wait(deadline)
        except ExitedEarlyError as exc:
            if not (retry and exc.port_in_use):
                raise
            self.choose_ports()
            _log.info("%s: %s found a port taken, retrying on %s", self.component, self.name, self)
            self.launch()
            self._wait(deadline)
        return self

    def launch(self) -> None:
        """Start the child without waiting for it; :meth:`wait_healthy` waits."""
        if self._closed:
            raise ProcessError(f"{self.component}: {self.name} is closed")
        if self.running:
            raise ProcessError(f"{self.component}: {self.name} is already running (pid {self.pid})")
        self._child.proc = None
        self._paused = False
        self._run_offset = self.log_offset
        command = list(self._command(self))
        banner = self._banner(self) if self._banner else self._default_banner()
        with self.log_path.open("ab") as log:
            log.write(f"{banner}\n".encode())
            log.flush()
            self._child.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env,
                start_new_session=True,  # a session and process group of its own
            )
        self._launched_at = time.monotonic()
        self._serial = next_serial()
        track(self)
        _log.debug("%s: launched %s (pid %d)", self.component, self.name, self._child.proc.pid)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Return once the health check passes; if the child exits or time runs out, raise."""
        self._wait(time.monotonic() + default_timeout(timeout))

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM the group (after SIGCONT if paused) and wait; SIGKILL after ``grace`` seconds."""
        grace = default_timeout(grace)
        proc = self._child.proc
        if proc is not None and self._child.poll() is None:
            if self._paused:
                self._child.signal_group(signal.SIGCONT)
            _log.info("%s: SIGTERM %s (pid %d)", self.component, self.name, proc.pid)
            self._child.signal_group(signal.SIGTERM)
            begun = time.monotonic()
            try:
                self._child.wait(grace)
            except subprocess.TimeoutExpired:
                _log.warning(
                    "%s: %s ignored SIGTERM for %ss, killing it", self.component, self.name, grace
                )
                self.kill()
            else:
                took = time.monotonic() - begun
                _log.debug("%s: %s exited %.2fs after SIGTERM", self.component, self.name, took)
        self._forget()

    def kill(self, timeout: float | None = None) -> None:
        """SIGKILL the group and wait for the process to be gone."""
        proc = self._child.proc
        if proc is None:
            return
        if self._child.poll() is None:
            _log.info("%s: SIGKILL %s (pid %d)", self.component, self.name, proc.pid)
            self._child.signal_group(signal.SIGKILL)
            try:
                self._child.wait(default_timeout(timeout))
            except subprocess.TimeoutExpired as exc:
                raise ProcessError(
                    f"{self.component}: {self.name} (pid {proc.pid}) survived SIGKILL"
                ) from exc
        self._forget()

    def pause(self, timeout: float | None = None) -> None:
        """SIGSTOP: the process keeps its sockets open but answers nothing until :meth:`resume`."""
        proc = self._require_running("pause")
        self._child.signal_group(signal.SIGSTOP)
        self._paused = True
        deadline = time.monotonic() + default_timeout(timeout)
        while process_state(proc.pid) not in (None, "T", "t"):
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.component}: {self.name} (pid {proc.pid}) did not stop on SIGSTOP"
                )
            time.sleep(0.001)
        _log.info("%s: SIGSTOP %s (pid %d)", self.component, self.name, proc.pid)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        proc = self._require_running("resume")
        self._child.signal_group(signal.SIGCONT)
        self._paused = False
        _log.info("%s: SIGCONT %s (pid %d)", self.component, self.name, proc.pid)

    def restart(self: _P, timeout: float | None = None) -> _P:
        """Stop if running, then start again on the same ports, in the same workdir."""
        self.stop(timeout)
        return self.start(timeout)

    def close(self) -> None:
        """Stop (kill if it will not stop), remove a workdir made here. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            self._finalizer()
            untrack(self)

    # -- logs

    @property
    def log_offset(self) -> int:
        """The log's size now: pass it as ``since`` to :meth:`log_tail` to see only what follows."""
        return self._log.size

    def log_tail(self, lines: int = 60, *, since: int = 0) -> str:
        """The last ``lines`` lines of the log (every run appends to it), from offset ``since``."""
        return self._log.tail(lines, since)

    def run_log(self) -> str:
        """Everything the current (or last) run wrote, from its banner line on."""
        return self._log.read(self._run_offset)

    # -- internals

    def _default_banner(self) -> str:
        ports = ", ".join(str(p) for p in self._ports) or "no ports"
        return f"=== naming.testing.process: starting {self.name} on {HOST} ports {ports}"

    def _require_running(self, action: str) -> subprocess.Popen[bytes]:
        proc = self._child.proc
        if proc is None or self._child.poll() is not None:
            raise ProcessError(f"{self.component}: cannot {action} {self.name}: it is not running")
        return proc

    def _forget(self) -> None:
        self._child.proc = None
        self._paused = False
        untrack(self)

    def _wait(self, deadline: float) -> None:
        proc = self._require_running("wait for")
        while True:
            code = self._child.poll()
            if code is not None:
                self._forget()
                tail = self.log_tail(since=self._run_offset)
                raise ExitedEarlyError(
                    f"{self.component}: {self.name} exited with code {code} before it was healthy; "
                    f"log {self.log_path}:\n{tail}",
                    returncode=code,
                    tail=tail,
                    port_in_use=self._port_in_use(self.run_log()),
                )
            try:
                ready = self._healthy(self)
            except BaseException:
                self.kill()
                raise
            if ready:
                break
            if time.monotonic() >= deadline:
                tail = self.log_tail(since=self._run_offset)
                self.kill()
                raise NotHealthyError(
                    f"{self.component}: {self.name} was not healthy in time; "
                    f"log {self.log_path}:\n{tail}",
                    tail=tail,
                )
            time.sleep(POLL_INTERVAL)
        self._healthy_once = True
        _log.info(
            "%s: %s healthy on ports %s (pid %d), %.2fs after launch",
            self.component,
            self.name,
            list(self._ports),
            proc.pid,
            time.monotonic() - self._launched_at,
        )
