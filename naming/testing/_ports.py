"""Free loopback ports and a connect check, for :mod:`naming.testing.process`."""

from __future__ import annotations

import socket
import threading

__all__ = ["HOST", "accepts_connections", "free_ports"]

HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()
_ATTEMPTS = 100  # sockets tried beyond ``count`` before giving up


def free_ports(count: int = 1, host: str = HOST) -> list[int]:
    """``count`` distinct ports that were free on ``host`` a moment ago.

    A port is never handed out twice by one interpreter, so two servers of one test session do
    not race for the same port. Another program may still take one before the server binds it:
    :meth:`ManagedProcess.start` retries on fresh ports when that happens.
    """
    if count < 0:
        raise ValueError("process: a port count cannot be negative")
    with _lock:
        sockets: list[socket.socket] = []
        ports: list[int] = []
        try:
            for _ in range(count + _ATTEMPTS):
                if len(ports) == count:
                    break
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)  # held open until all are chosen: the kernel gives new ones
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
                if port not in _handed_out:
                    ports.append(port)
        finally:
            for sock in sockets:
                sock.close()
        if len(ports) < count:
            raise OSError(f"process: could not find {count} free ports on {host}")
        _handed_out.update(ports)
        return ports


def accepts_connections(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
