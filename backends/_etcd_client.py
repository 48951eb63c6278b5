"""Settings and the connection to etcd: one client at a time, rebuilt on failure, rotating hosts.

The ``etcd3`` client (cslab-etcd3) neither reconnects a watch nor recovers from a failed endpoint:
after one UNAVAILABLE it refuses its only endpoint for five minutes. So every retryable failure here
throws the client away, and the next call builds a new one on the next host of the target.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from naming.core import (
    BackendUnavailableError,
    MissingDependencyError,
    NamingError,
    OptionKind,
    Target,
    TargetError,
    merge_options,
    split_host_port,
)

__all__ = ["EtcdConnection", "EtcdSettings", "settings_from"]

log = logging.getLogger("naming.etcd")

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1:2379"
DEFAULT_PREFIX = "/services"
DEFAULT_TIMEOUT = 5.0

# gRPC keepalive pings are kept, but they did not notice a hung (SIGSTOPped) member with grpcio 1.85:
# the watch checks liveness itself (progress requests, _etcd_watch.py). etcd refuses pings more
# often than every 5 s (--grpc-keepalive-min-time), so stay above that. Responses may be large: a
# value can be as big as etcd's --max-request-bytes (1.5 MiB by default), and a watch catching up
# sends many events in one response, so receive as much as etcd's own Go client does (2 GiB - 1).
MAX_RECEIVE_BYTES = 2**31 - 1
_GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
]

_KINDS: dict[str, OptionKind] = {
    **dict.fromkeys(("prefix", "user", "password", "ca_cert", "cert_key", "cert_cert"), str),
    "timeout": float,
}
_RESOLVE_OPTIONS = frozenset(_KINDS)
REGISTER_OPTIONS = _RESOLVE_OPTIONS | {"instance_id", "close_timeout"}
_REGISTER_KINDS: dict[str, OptionKind] = {**_KINDS, "close_timeout": float}


@dataclass(frozen=True)
class EtcdSettings:
    """Where and how to reach etcd for one service. The password never appears in the repr."""

    hosts: tuple[str, ...]
    service: str
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    cert_key: str | None = None
    cert_cert: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key_prefix(self) -> str:
        """Every record of the service lives under this prefix: ``{prefix}/{service}/``, or
        ``{service}/`` when the prefix is empty (etcd's endpoints manager, go-zero)."""
        if not self.prefix:
            return f"{self.service}/"
        return f"{self.prefix.rstrip('/')}/{self.service}/"


def settings_from(
    target: Target, options: Mapping[str, Any], allowed: frozenset[str] = _RESOLVE_OPTIONS
) -> EtcdSettings:
    """Merge the target's query options with keyword options (these win) and check them all."""
    kinds = _REGISTER_KINDS if "close_timeout" in allowed else _KINDS
    merged = merge_options("etcd", target, options, allowed, secrets=("password",), kinds=kinds)
    hosts = tuple(target.hosts) or (DEFAULT_HOST,)
    for host in hosts:
        try:
            split_host_port(host)
        except ValueError as exc:
            raise TargetError(f"etcd: bad host in the target's authority: {exc}") from None
    if (merged.get("user") is None) != (merged.get("password") is None):
        raise ValueError("etcd: give both user and password, or neither")
    if (merged.get("cert_key") is None) != (merged.get("cert_cert") is None):
        raise ValueError("etcd: give both cert_key and cert_cert, or neither")
    if merged.get("cert_key") is not None and merged.get("ca_cert") is None:
        raise ValueError("etcd: a client certificate needs ca_cert too")
    given = merged.get("prefix")
    prefix = normal_prefix(DEFAULT_PREFIX if given is None else given)
    return EtcdSettings(
        hosts=hosts,
        service=target.endpoint,
        prefix=prefix,
        timeout=merged.get("timeout") or DEFAULT_TIMEOUT,
        user=merged.get("user"),
        password=merged.get("password"),
        ca_cert=merged.get("ca_cert"),
        cert_key=merged.get("cert_key"),
        cert_cert=merged.get("cert_cert"),
        extra={k: v for k, v in merged.items() if k not in _RESOLVE_OPTIONS},
    )


def normal_prefix(prefix: str) -> str:
    """``prefix`` without its trailing slashes; ``"/"`` (the root) and ``""`` (none) stay as they are.

    Any prefix is allowed, with or without a leading ``/``: ``/services`` reads
    ``/services/hello/``, ``apps`` reads ``apps/hello/``, ``/`` reads ``/hello/`` and ``""`` reads
    ``hello/`` (the layout of etcd's endpoints manager and of go-zero).
    """
    stripped = prefix.rstrip("/")
    return stripped if stripped or not prefix else "/"


ClientFactory = Callable[[EtcdSettings, str], Any]


def default_client_factory(settings: EtcdSettings, host: str) -> Any:
    """An ``etcd3`` client for one host; raises MissingDependencyError when cslab-etcd3 is missing."""
    try:
        import etcd3
    except ImportError as exc:
        raise MissingDependencyError(
            "etcd: the etcd backend needs cslab-etcd3; pip install 'grpc-naming[etcd]'"
        ) from exc
    hostname, port = split_host_port(host)
    client = etcd3.client(
        host=hostname.strip("[]"),
        port=port,
        ca_cert=settings.ca_cert,
        cert_key=settings.cert_key,
        cert_cert=settings.cert_cert,
        timeout=settings.timeout,
        user=settings.user,
        password=settings.password,
        grpc_options=_GRPC_OPTIONS,
    )
    if not client.uses_secure_channel:
        # gRPC refuses call credentials on a plaintext channel; the auth token also travels in
        # every call's metadata, which is all etcd needs.
        client.call_credentials = None
    return client


class EtcdConnection:
    """One etcd client at a time. Thread-safe.

    ``call(what, fn)`` runs ``fn(client)``; a failure that can be retried (etcd away, a timeout, an
    expired token) drops the client, moves on to the next host, and raises BackendUnavailableError;
    a failure that cannot (wrong credentials, no permission, unreadable TLS files) raises NamingError.
    """

    def __init__(self, settings: EtcdSettings, factory: ClientFactory = default_client_factory):
        self.settings = settings
        self._factory = factory
        self._lock = threading.Lock()
        self._client: Any = None
        self._index = 0
        self._closed = False

    @property
    def host(self) -> str:
        """The host in use, or to be used next."""
        return self.settings.hosts[self._index]

    def client(self) -> Any:
        """The current client, built on first use."""
        with self._lock:
            if self._closed:
                raise BackendUnavailableError("etcd: the connection is closed")
            if self._client is None:
                host = self.host
                try:
                    self._client = self._factory(self.settings, host)
                except NamingError:
                    raise
                except Exception as exc:
                    error = classify("connect", host, exc)
                    if isinstance(error, BackendUnavailableError):
                        self._index = (self._index + 1) % len(self.settings.hosts)
                    raise error from exc
            return self._client

    def call(self, what: str, fn: Callable[[Any], T]) -> T:
        client = self.client()
        host = self.host
        try:
            return fn(client)
        except Exception as exc:
            error = classify(what, host, exc)
            if isinstance(error, BackendUnavailableError):
                self.reset(client)
            raise error from exc

    def reset(self, client: Any = None) -> None:
        """Drop the client (only if it is still ``client``, when given) and move to the next host."""
        with self._lock:
            if self._client is None or (client is not None and client is not self._client):
                return
            old, self._client = self._client, None
            self._index = (self._index + 1) % len(self.settings.hosts)
        _close_quietly(old)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            old, self._client = self._client, None
        if old is not None:
            _close_quietly(old)


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception as exc:  # closing a broken client must never fail the caller
        log.debug("etcd: closing a client failed: %s", exc)


def classify(what: str, host: str, exc: BaseException) -> NamingError:
    """Turn a client-library error into BackendUnavailableError (retry) or NamingError (give up)."""
    code_name, details = _grpc_code(exc)
    text = details or str(exc) or type(exc).__name__
    message = f"etcd: {what} on {host} failed: {code_name or type(exc).__name__}: {text}"
    lowered = text.lower()
    if code_name == "PERMISSION_DENIED" or "permission denied" in lowered:
        return NamingError(message)
    if code_name == "INVALID_ARGUMENT" and (
        "authentication failed" in lowered or "user name is empty" in lowered
    ):
        return NamingError(message)  # wrong or missing credentials: retrying will not help
    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)):
        return NamingError(message)  # an unreadable certificate file, for instance
    return BackendUnavailableError(message)


def _grpc_code(exc: BaseException) -> tuple[str | None, str | None]:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if not callable(code):
        return None, None
    try:
        code_value = code()
        detail_value = details() if callable(details) else None
    except Exception:
        return None, None
    return getattr(code_value, "name", None), detail_value
