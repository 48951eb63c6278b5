"""Settings and kazoo clients for the ZooKeeper backend.

Every kazoo client made here logs through ``naming.zk.kazoo`` with the password and the digest
credentials taken out of every message (kazoo logs each request it sends, the auth packet
included, at its BLATHER level), and every kazoo error is wrapped at this edge: a lost
connection or a timeout is a ``BackendUnavailableError`` (retry), a refusal a ``NamingError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
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

__all__ = [
    "REGISTER_OPTIONS",
    "ClientFactory",
    "ZkSettings",
    "default_client_factory",
    "settings_from",
    "zk_call",
]

log = logging.getLogger("naming.zk")
_kazoo_log = logging.getLogger("naming.zk.kazoo")

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1:2181"
DEFAULT_ROOT = "/services"
DEFAULT_SESSION_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0

_KINDS: dict[str, OptionKind] = {
    **dict.fromkeys(("root", "username", "password", "ca_cert", "cert_key", "cert_cert"), str),
    "session_timeout": float,
    "connect_timeout": float,
}
_RESOLVE_OPTIONS = frozenset(_KINDS)
REGISTER_OPTIONS = _RESOLVE_OPTIONS | {"instance_id", "record_format", "close_timeout"}
_REGISTER_KINDS: dict[str, OptionKind] = {
    **_KINDS,
    "instance_id": str,
    "record_format": str,
    "close_timeout": float,
}
RECORD_FORMATS = ("json", "curator")


@dataclass(frozen=True)
class ZkSettings:
    """Where and how to reach ZooKeeper for one service. The password never appears in the repr."""

    hosts: tuple[str, ...]
    service: str
    root: str = DEFAULT_ROOT
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    cert_key: str | None = None
    cert_cert: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def path(self) -> str:
        """The service's node: its children are the instances."""
        return f"{self.root.rstrip('/')}/{self.service}"

    @property
    def secrets(self) -> tuple[str, ...]:
        if self.password is None:
            return ()
        return (f"{self.username}:{self.password}", self.password)


def settings_from(
    target: Target, options: Mapping[str, Any], allowed: frozenset[str] = _RESOLVE_OPTIONS
) -> ZkSettings:
    """Check and merge the target's and the keyword options (keywords win)."""
    kinds = _REGISTER_KINDS if allowed is REGISTER_OPTIONS else _KINDS
    merged = merge_options("zk", target, options, allowed, secrets=("password",), kinds=kinds)
    hosts = tuple(target.hosts) or (DEFAULT_HOST,)
    for host in hosts:
        try:
            split_host_port(host)
        except ValueError as exc:
            raise TargetError(f"zk: bad host {host!r} in target {target}: {exc}") from exc
    if not target.endpoint or "/" in target.endpoint:
        raise TargetError(f"zk: the service name must be one path segment, got {target.endpoint!r}")
    root = merged.pop("root", None) or DEFAULT_ROOT
    if not root.startswith("/") or (root != "/" and root.endswith("/")):
        raise ValueError(f"zk: root must start with '/' and not end with one, got {root!r}")
    if (merged.get("username") is None) != (merged.get("password") is None):
        raise ValueError("zk: username and password go together")
    if merged.get("cert_cert") is not None and merged.get("cert_key") is None:
        raise ValueError("zk: cert_cert needs cert_key")
    fmt = merged.get("record_format")
    if fmt is not None and fmt not in RECORD_FORMATS:
        raise ValueError(f"zk: record_format must be one of {list(RECORD_FORMATS)}, got {fmt!r}")
    extra = {k: merged.pop(k, None) for k in ("instance_id", "record_format", "close_timeout")}
    return ZkSettings(
        hosts=hosts,
        service=target.endpoint,
        root=root,
        session_timeout=merged.get("session_timeout") or DEFAULT_SESSION_TIMEOUT,
        connect_timeout=merged.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT,
        username=merged.get("username"),
        password=merged.get("password"),
        ca_cert=merged.get("ca_cert"),
        cert_key=merged.get("cert_key"),
        cert_cert=merged.get("cert_cert"),
        extra={k: v for k, v in extra.items() if v is not None},
    )


class _Redacting(logging.LoggerAdapter):  # type: ignore[type-arg]
    """kazoo's logger: formats each message itself and hides the secrets in it."""

    def __init__(self, logger: logging.Logger, secrets: tuple[str, ...]) -> None:
        super().__init__(logger, {})
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        for secret in self._secrets:
            text = text.replace(secret, "<hidden>")
        kwargs.pop("extra", None)
        self.logger.log(level, "%s", text, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs


ClientFactory = Callable[[ZkSettings, float], Any]


def default_client_factory(settings: ZkSettings, session_timeout: float) -> Any:
    """A new, unstarted kazoo client for ``settings``; retries forever to reconnect."""
    from kazoo.client import KazooClient  # late: only the ZooKeeper backend needs kazoo
    from kazoo.retry import KazooRetry

    options: dict[str, Any] = {}
    if settings.password is not None:
        options["auth_data"] = [("digest", f"{settings.username}:{settings.password}")]
    if settings.ca_cert is not None:
        options.update(use_ssl=True, ca=settings.ca_cert, verify_certs=True)
        if settings.cert_cert is not None:
            options.update(certfile=settings.cert_cert, keyfile=settings.cert_key)
    return KazooClient(
        hosts=",".join(settings.hosts),
        timeout=session_timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=1.0),
        command_retry=None,
        logger=_Redacting(_kazoo_log, settings.secrets),
        **options,
    )


def zk_call(what: str, fn: Callable[[], T]) -> T:
    """Run one kazoo call, wrapping its errors as the loop expects."""
    from kazoo import exceptions as ke
    from kazoo.handlers.threading import KazooTimeoutError

    try:
        return fn()
    except (ke.NoNodeError, ke.NodeExistsError, ke.BadVersionError, ke.NotEmptyError):
        raise  # answers about the tree, for the caller to handle
    except (ke.ConnectionLoss, ke.SessionExpiredError, ke.ConnectionClosedError) as exc:
        raise BackendUnavailableError(f"zk: {what}: {type(exc).__name__}") from exc
    except (KazooTimeoutError, ke.OperationTimeoutError) as exc:
        raise BackendUnavailableError(f"zk: {what}: no answer in time") from exc
    except (ke.NoAuthError, ke.AuthFailedError) as exc:
        raise NamingError(f"zk: {what}: not authorized ({type(exc).__name__})") from exc
    except ke.KazooException as exc:
        raise BackendUnavailableError(f"zk: {what}: {type(exc).__name__}: {exc}") from exc
