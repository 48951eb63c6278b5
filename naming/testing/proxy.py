"""TcpProxy: a loopback TCP forwarder that a test can cut, to partition a client from its registry.

Point the backend under test at the proxy's ``endpoint`` and keep another path to the registry:
while the proxy is cut the backend sees the registry as gone, yet the test can still write to it,
compact it, or check it directly. A partition, with no server stopped::

    with TcpProxy(etcd.endpoint) as proxy:
        watcher = naming.resolve(f"etcd://{proxy.endpoint}/svc")
        proxy.cut()      # every connection through it is closed, new ones are closed at once
        etcd.put(...)    # the test's own path still works
        proxy.heal()     # connections go through again

One thread (``naming-testing-proxy-<port>``) moves the bytes; ``close()`` stops it and closes every
socket. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading

from naming.core import Closeable, split_host_port

from ._wait import DEFAULT_TIMEOUT

__all__ = ["TcpProxy"]

logger = logging.getLogger(__name__)

_CHUNK = 65536
_CONNECT_TIMEOUT = 2.0


class TcpProxy(Closeable):
    """Forwards connections to ``127.0.0.1:<port>`` on to ``upstream`` (``host:port``).

    ``cut()`` closes every connection and refuses new ones (accepted, then closed) until ``heal()``.
    ``connections`` counts the pairs open now. Every method is thread-safe; ``close()`` is
    idempotent and waits for the proxy's thread to end.
    """

    def __init__(self, upstream: str) -> None:
        host, port = split_host_port(upstream)
        self.upstream = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._cut = False
        self._closed = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(
            target=self._run, name=f"naming-testing-proxy-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._peers) // 2

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Close every connection through the proxy; close new ones at once until :meth:`heal`."""
        with self._lock:
            self._cut = True
        self._wake()

    def heal(self) -> None:
        """Let connections through again (clients reconnect by themselves)."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(DEFAULT_TIMEOUT)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "cut" if self._cut else "open"
        return f"<TcpProxy {self.endpoint} -> {self.upstream[0]}:{self.upstream[1]} {state}>"

    # -- the loop ------------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            while not self._closed:
                for key, _ in self._selector.select():
                    sock = key.fileobj
                    if sock is self._wake_r:
                        self._wake_r.recv(_CHUNK)
                    elif sock is self._listener:
                        self._accept()
                    else:
                        assert isinstance(sock, socket.socket)
                        self._forward(sock)
                if self._cut:
                    self._drop_all()
        finally:
            self._drop_all()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
            self._selector.close()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._cut:
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream, timeout=_CONNECT_TIMEOUT)
        except OSError as exc:
            logger.debug("testing: proxy %s cannot reach its upstream: %s", self.endpoint, exc)
            client.close()
            return
        for sock in (client, server):
            sock.settimeout(DEFAULT_TIMEOUT)  # sends block at most this long
            self._selector.register(sock, selectors.EVENT_READ)
        with self._lock:
            self._peers[client] = server
            self._peers[server] = client

    def _forward(self, sock: socket.socket) -> None:
        with self._lock:
            peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(_CHUNK)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            peer = self._peers.pop(sock, None)
            if peer is not None:
                self._peers.pop(peer, None)
        for each in (sock, peer):
            if each is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(each)
                each.close()

    def _drop_all(self) -> None:
        with self._lock:
            socks = list(self._peers)
        for sock in socks:
            self._drop(sock)
