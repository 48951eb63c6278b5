"""The transport under py-consul: ``http.client`` connections we can cut.

py-consul builds every request (paths, parameters, headers) and reads every answer; its
``HTTPClient`` is abstract, and ours sends on ``http.client``: connections kept alive between
requests (an idle one the agent closed is replaced once, at once), a per-thread timeout, and
``close()`` that shuts down the sockets of the requests in flight, so that closing a watcher ends a
blocking query at once instead of after its ``wait``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._consul_client import ConsulSettings

__all__ = ["Transport", "consul_client"]


def _base_client() -> type:
    from consul import base  # late: only the consul backend needs py-consul

    return base.HTTPClient  # type: ignore[no-any-return]


class Transport:
    """py-consul's HTTPClient on ``http.client``: a connection per request, cut by interrupt()."""

    def __init__(self, settings: ConsulSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._idle: list[http.client.HTTPConnection] = []  # kept alive between requests
        self._closed = False
        self.local = threading.local()  # .timeout: this thread's per-request timeout, if set
        self._context: ssl.SSLContext | None = None
        if settings.tls:
            self._context = ssl.create_default_context(cafile=settings.ca_cert)
            if settings.cert_cert and settings.cert_key:
                self._context.load_cert_chain(settings.cert_cert, settings.cert_key)

    def request(
        self,
        callback: Callable[[Any], Any],
        method: str,
        path: str,
        params: Any,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> Any:
        from consul import base

        params = list(params or [])
        if method == "GET" and self.settings.consistency != "default":
            params.append((self.settings.consistency, ""))  # ?stale or ?consistent
        query = urllib.parse.urlencode(params)
        url = urllib.parse.quote(path, safe="/:") + (f"?{query}" if query else "")
        timeout = getattr(self.local, "timeout", None) or self.settings.timeout
        if any(name == "index" for name, _ in params):
            timeout += self.settings.wait * (1 + 1 / 16)  # the agent adds up to wait/16 of jitter
        reused = True
        while True:
            connection = self._take(timeout)
            if connection is None:
                connection, reused = self._connect(timeout), False
            try:
                body = data.encode() if isinstance(data, str) else data
                connection.request(method, url, body=body or None, headers=dict(headers or {}))
                response = connection.getresponse()
                text = response.read().decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(connection)
                if reused and not self._closed:
                    continue  # an idle connection the agent had closed: once more, on a new one
                raise
            except BaseException:
                self._drop(connection)
                raise
            self._release(connection, keep=not response.will_close)
            return callback(base.Response(response.status, response.headers, text))

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        host, port = self.settings.host, self.settings.port
        connection: http.client.HTTPConnection
        if self._context is not None:
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            self._open.add(connection)
        return connection

    def _take(self, timeout: float) -> http.client.HTTPConnection | None:
        """An idle kept-alive connection, set to ``timeout``, or None."""
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            while self._idle:
                connection = self._idle.pop()
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                    self._open.add(connection)
                    return connection
                connection.close()
        return None

    def _release(self, connection: http.client.HTTPConnection, *, keep: bool) -> None:
        with self._lock:
            self._open.discard(connection)
            if keep and not self._closed and len(self._idle) < 2:
                self._idle.append(connection)
                return
        connection.close()

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(connection)
        connection.close()

    def interrupt(self) -> None:
        """Cut every request in flight; they raise OSError."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        self.interrupt()
        for connection in idle:
            connection.close()


def consul_client(transport: Transport, settings: ConsulSettings) -> Any:
    import consul

    base_client = _base_client()

    class Http(base_client):  # type: ignore[misc, valid-type]
        def get(
            self,
            callback: Any,
            path: str,
            params: Any = None,
            headers: Any = None,
            raw: bool = False,
        ) -> Any:
            return transport.request(callback, "GET", path, params, None, headers)

        def put(
            self, callback: Any, path: str, params: Any = None, data: Any = "", headers: Any = None
        ) -> Any:
            return transport.request(callback, "PUT", path, params, data, headers)

        def delete(
            self, callback: Any, path: str, params: Any = None, data: Any = "", headers: Any = None
        ) -> Any:
            return transport.request(callback, "DELETE", path, params, data, headers)

        def post(
            self, callback: Any, path: str, params: Any = None, data: Any = "", headers: Any = None
        ) -> Any:
            return transport.request(callback, "POST", path, params, data, headers)

        def close(self) -> None:
            transport.close()

    class Client(consul.Consul):  # type: ignore[misc]
        def http_connect(
            self, host: str, port: int, scheme: str, verify: Any = True, cert: Any = None
        ) -> Any:
            return Http(host, port, scheme, verify, cert)

    client = Client(
        host=settings.host,
        port=settings.port,
        scheme="https" if settings.tls else "http",
        consistency=settings.consistency,
        dc=settings.dc,
    )
    client.token = settings.token  # py-consul lets CONSUL_HTTP_TOKEN win: ours was chosen already
    return client
