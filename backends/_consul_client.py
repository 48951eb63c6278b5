"""Settings and the connection to a Consul agent, through py-consul with a transport we can cut.

py-consul builds every request (paths, parameters, headers, answers); the transport under it is
ours, on ``http.client``: connections kept alive between requests (an idle one the agent closed is
replaced once, at once), and ``interrupt()`` shuts down the sockets of the requests in flight, so
that closing a watcher ends a blocking query at once instead of after its ``wait``. Every failure is
mapped once, in ``ConsulConnection.call``: unreachable, timed out or 5xx is BackendUnavailableError
(retry); a 403 (an ACL refusal) or a 400 is a NamingError (give up, no retry storm).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from naming.core import (
    BackendUnavailableError,
    NamingError,
    OptionKind,
    Target,
    TargetError,
    merge_options,
    split_host_port,
)

__all__ = ["REGISTER_OPTIONS", "ConsulConnection", "ConsulSettings", "settings_from"]

T = TypeVar("T")

DEFAULT_ADDR = "127.0.0.1:8500"
DEFAULT_TIMEOUT = 5.0
DEFAULT_WAIT = 60.0
CONSISTENCY = ("default", "consistent", "stale")


def _tags(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(tag, str) and tag for tag in items):
        raise ValueError(f"tags must be non-empty strings, got {value!r}")
    return tuple(items)


def _consistency(value: Any) -> str:
    if value not in CONSISTENCY:
        raise ValueError(f"must be one of {list(CONSISTENCY)}, got {value!r}")
    return str(value)


def _check(value: Any) -> str:
    if value not in ("ttl", "grpc"):
        raise ValueError(f"must be 'ttl' or 'grpc', got {value!r}")
    return str(value)


_KINDS: dict[str, OptionKind] = {
    **dict.fromkeys(("dc", "near", "token", "ca_cert", "cert_cert", "cert_key"), str),
    "tag": _tags,
    "passing": bool,
    "wait": float,
    "timeout": float,
    "consistency": _consistency,
}
_RESOLVE_OPTIONS = frozenset(_KINDS)
_REGISTER_KINDS: dict[str, OptionKind] = {
    **_KINDS,
    "instance_id": str,
    "tags": _tags,
    "check": _check,
    "deregister_after": float,
    "close_timeout": float,
}
REGISTER_OPTIONS = frozenset(_REGISTER_KINDS)


@dataclass(frozen=True)
class ConsulSettings:
    """Where and how to reach the agent for one service. The token never appears in the repr."""

    host: str
    port: int
    service: str
    tls: bool = False
    tags: tuple[str, ...] = ()
    dc: str | None = None
    passing: bool = True
    near: str | None = None
    wait: float = DEFAULT_WAIT
    timeout: float = DEFAULT_TIMEOUT
    consistency: str = "default"
    token: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    cert_cert: str | None = None
    cert_key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def settings_from(
    target: Target, options: Mapping[str, Any], allowed: frozenset[str] = _RESOLVE_OPTIONS
) -> ConsulSettings:
    """Settings from the target and keyword options, then the environment as Consul's CLI reads it:
    ``CONSUL_HTTP_ADDR`` when the target has no authority, ``CONSUL_HTTP_TOKEN`` when no ``token``
    option is given (an explicit option wins), ``CONSUL_CACERT`` when no ``ca_cert`` is."""
    kinds = _REGISTER_KINDS if allowed is REGISTER_OPTIONS else _KINDS
    merged = merge_options("consul", target, options, allowed, secrets=("token",), kinds=kinds)
    if not target.endpoint:
        raise TargetError(f"consul: the target {target} names no service")
    authority, tls = target.authority, False
    if not authority:
        authority = os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDR
        scheme, sep, rest = authority.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise TargetError(f"consul: CONSUL_HTTP_ADDR has the scheme {scheme!r}")
            authority, tls = rest.rstrip("/"), scheme == "https"
    if "," in authority or "@" in authority:
        raise TargetError(f"consul: the target {target} must name one agent as host:port")
    try:
        host, port = split_host_port(authority)
        number = int(port)
    except (ValueError, TypeError) as exc:
        raise TargetError(f"consul: bad agent address {authority!r} in {target}: {exc}") from None
    ca_cert = merged.get("ca_cert") or os.environ.get("CONSUL_CACERT") or None
    if (merged.get("cert_cert") is None) != (merged.get("cert_key") is None):
        raise ValueError("consul: cert_cert and cert_key go together")
    token = merged.get("token")
    if token is None:
        token = os.environ.get("CONSUL_HTTP_TOKEN") or None
    extra = {k: v for k, v in merged.items() if k in REGISTER_OPTIONS - _RESOLVE_OPTIONS}
    return ConsulSettings(
        host=host,
        port=number,
        service=target.endpoint,
        tls=tls or ca_cert is not None,
        tags=merged.get("tag") or (),
        dc=merged.get("dc"),
        passing=merged.get("passing", True) is not False,
        near=merged.get("near"),
        wait=merged.get("wait") or DEFAULT_WAIT,
        timeout=merged.get("timeout") or DEFAULT_TIMEOUT,
        consistency=merged.get("consistency") or "default",
        token=token,
        ca_cert=ca_cert,
        cert_cert=merged.get("cert_cert"),
        cert_key=merged.get("cert_key"),
        extra=extra,
    )


def _base_client() -> type:
    from consul import base  # late: only the consul backend needs py-consul

    return base.HTTPClient  # type: ignore[no-any-return]


class _Transport:
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


def _client(transport: _Transport, settings: ConsulSettings) -> Any:
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


class ConsulConnection:
    """A py-consul client for ``settings``; ``call()`` maps its errors. Thread-safe."""

    def __init__(self, settings: ConsulSettings) -> None:
        self.settings = settings
        self._transport = _Transport(settings)
        self.client = _client(self._transport, settings)

    def call(self, what: str, fn: Callable[[Any], T]) -> T:
        import consul

        where = self.settings.endpoint
        try:
            return fn(self.client)
        except consul.ACLPermissionDenied as exc:
            raise NamingError(
                f"consul: {what} at {where} was refused by Consul's ACLs ({_first_line(exc)}); "
                "check the token and its policy"
            ) from None
        except consul.ConsulException as exc:
            text = _first_line(exc)
            if text[:1] == "5" or "No path to datacenter" in text:
                raise BackendUnavailableError(f"consul: {what} at {where} failed: {text}") from None
            raise NamingError(f"consul: {what} at {where} was refused: {text}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise BackendUnavailableError(
                f"consul: the agent at {where} is unreachable ({what}): {type(exc).__name__}: {exc}"
            ) from None

    def call_within(self, seconds: float, what: str, fn: Callable[[Any], T]) -> T:
        """``call()`` with each request of this thread waiting at most ``seconds``."""
        self._transport.local.timeout = seconds
        try:
            return self.call(what, fn)
        finally:
            self._transport.local.timeout = None

    def interrupt(self) -> None:
        """End the requests in flight for good: the connection takes no new ones."""
        self._transport.close()

    def close(self) -> None:
        self._transport.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
