"""Settings and the connection to a Consul agent, through py-consul (transport: ._consul_http).

Every failure is mapped once, in ``ConsulConnection.call``: unreachable, timed out or 5xx is
BackendUnavailableError (retry); a 403 (an ACL refusal) or a 400 is a NamingError (give up, no
retry storm).
"""

from __future__ import annotations

import http.client
import os
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

from ._consul_http import Transport, consul_client

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


class ConsulConnection:
    """A py-consul client for ``settings``; ``call()`` maps its errors. Thread-safe."""

    def __init__(self, settings: ConsulSettings) -> None:
        self.settings = settings
        self._transport = Transport(settings)
        self.client = consul_client(self._transport, settings)

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
