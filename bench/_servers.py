"""Benchmark servers in child processes on 127.0.0.1: start, stop (SIGTERM), kill (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ChildServer", "child_servers"]

START_TIMEOUT = 30.0


class ChildServer:
    """One ``bench._server`` process. ``address`` is known once started; restarts keep the port."""

    def __init__(self, name: str, register: str | None = None, delay_ms: float = 0.0) -> None:
        self.name = name
        self.register = register
        self.delay_ms = delay_ms
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> ChildServer:
        command = [
            sys.executable,
            "-m",
            "bench._server",
            "--name",
            self.name,
            "--port",
            str(self.port),
        ]
        if self.register:
            command += ["--register", self.register]
        if self.delay_ms:
            command += ["--delay", str(self.delay_ms)]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # bounded: the child prints or exits
        if not line.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"bench: server {self.name} did not start")
        self.port = int(line.split()[1])
        return self

    def stop(self, timeout: float = START_TIMEOUT) -> None:
        """SIGTERM: deregister (when registered), then stop gracefully."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets open and answers nothing until ``resume()``."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(START_TIMEOUT)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


@contextmanager
def child_servers(
    count: int, register: str | None = None, delays_ms: tuple[float, ...] = ()
) -> Iterator[list[ChildServer]]:
    """``count`` started servers named s1..sN (server i sleeping ``delays_ms[i]`` ms in every Echo
    call, when given); all killed at exit."""
    delays = list(delays_ms) + [0.0] * (count - len(delays_ms))
    servers = [ChildServer(f"s{i + 1}", register, delays[i]) for i in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()
