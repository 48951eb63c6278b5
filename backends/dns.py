"""dns: gRPC's default scheme, ``dns:[//server[:port]]/host[:port]`` (docs/backends/dns.md).

* ``dns:///host:port``, ``dns:host:port`` and a bare ``host:port``: A/AAAA through the system
  resolver (``getaddrinfo``: /etc/hosts and nsswitch, so ``localhost`` works), re-resolved every
  ``min_interval`` (there is no TTL). The port defaults to 443, as in gRPC; an IP literal is used
  as it is.
* ``dns://127.0.0.1:5353/host:port``: A and AAAA asked of that server with dnspython (the ``dns``
  extra), re-resolved when the smallest TTL of the answer runs out, no sooner than ``min_interval``
  and no later than ``max_interval``.
* ``dns:///_grpc._tcp.hello.example.com``: a name starting with ``_`` is an SRV lookup (dnspython):
  ports from the records, ``weight`` and ``priority`` as metadata, the lowest priority group with an
  address.

Options (target query or keywords): ``min_interval`` (30 s, as grpc-go), ``max_interval``
(1800 s), ``grace`` (how long a name that went missing keeps its last set; one ``min_interval`` by
default), ``timeout`` (one query, 5 s). DNS holds no registrations: ``register()`` says so.
"""

from __future__ import annotations

import ipaddress
import threading
import weakref
from collections.abc import Callable
from typing import Any

from naming.core import (
    Address,
    Backend,
    MissingDependencyError,
    NamingError,
    Registration,
    Resolver,
    Target,
    TargetError,
    as_target,
    hookimpl,
    merge_options,
    split_host_port,
)

from ._dns_lookup import Answer, DnspythonLookup, SystemLookup, format_address
from ._dns_watch import DnsSettings, DnsWatcher

__all__ = [
    "DEFAULT_PORT",
    "DnsBackend",
    "DnsResolver",
    "DnsSettings",
    "DnsWatcher",
    "split_dns_endpoint",
]

DEFAULT_PORT = 443
ALLOWED = ("min_interval", "max_interval", "grace", "timeout")
KINDS: dict[str, Any] = {name: float for name in ALLOWED}


def split_dns_endpoint(endpoint: str) -> tuple[str, int | None]:
    """``host[:port]`` of a dns target: the host and its port (None for an SRV name).

    The port defaults to 443, as gRPC's; an IPv6 literal is written in brackets.
    """
    if endpoint.startswith("_"):
        if ":" in endpoint:
            raise TargetError(
                f"dns: an SRV name takes no port (ports come from the records): {endpoint!r}"
            )
        return endpoint, None
    try:
        host, port = split_host_port(endpoint)
    except ValueError:
        try:
            host, port = split_host_port(f"{endpoint}:{DEFAULT_PORT}")
        except ValueError as exc:
            raise TargetError(f"dns: {endpoint!r} is not host[:port]: {exc}") from None
    return host.strip("[]"), port


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


class DnsResolver(Resolver):
    """Makes a DnsWatcher per target; ``resolve_now()`` asks each live one to re-resolve."""

    def __init__(self, server: str, settings: DnsSettings, timeout: float) -> None:
        self._server = server
        self._settings = settings
        self._timeout = timeout
        self._watchers: weakref.WeakSet[DnsWatcher] = weakref.WeakSet()
        self._lock = threading.Lock()

    def resolve(self, target: Target | str) -> DnsWatcher:
        parsed = as_target(target)
        host, port = split_dns_endpoint(parsed.endpoint)
        lookup, release = self._lookup(host, port)
        watcher = DnsWatcher(lookup, parsed.endpoint, self._settings, release=release)
        with self._lock:
            self._watchers.add(watcher)
        return watcher

    def resolve_now(self) -> None:
        """Re-resolve every live watcher now, each at most once per ``min_interval``."""
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            if not watcher.closed:
                watcher.resolve_now()

    def close(self) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.close()

    def _lookup(
        self, host: str, port: int | None
    ) -> tuple[Callable[[], Answer], Callable[[], None] | None]:
        if port is None:
            srv = DnspythonLookup(self._server, self._timeout)
            return (lambda: srv.srv(host)), srv.close
        literal = _ip_literal(host)
        if literal is not None:
            fixed = Answer([format_address(literal, port)], None)
            return (lambda: fixed), None
        if self._server:
            named = DnspythonLookup(self._server, self._timeout)
            return (lambda: named.addresses(host, port)), named.close
        system = SystemLookup()
        return (lambda: system.addresses(host, port)), system.close


class DnsBackend(Backend):
    schemes = ("dns",)

    def build(self, target: Target, **options: Any) -> Resolver:
        merged = merge_options("dns", target, options, ALLOWED, kinds=KINDS)
        min_interval = float(merged.get("min_interval") or 30.0)
        max_interval = float(merged.get("max_interval") or max(1800.0, min_interval))
        if max_interval < min_interval:
            raise ValueError(
                f"dns: max_interval ({max_interval:g}) is below min_interval ({min_interval:g})"
            )
        grace = merged.get("grace")
        settings = DnsSettings(min_interval, max_interval, min_interval if grace is None else grace)
        _host, port = split_dns_endpoint(target.endpoint)  # fail at build time, not in the watcher
        if target.authority or port is None:
            self.check_dnspython()
        return DnsResolver(target.authority, settings, float(merged.get("timeout") or 5.0))

    def check_dnspython(self) -> None:
        """A named server and SRV need dnspython: MissingDependencyError says what to install."""
        try:
            import dns.resolver  # noqa: F401
        except Exception as exc:  # missing, or installed but broken: both need the install
            raise MissingDependencyError(
                f"dns: a named DNS server and SRV need the dns.resolver module "
                f"({type(exc).__name__}: {exc}); pip install 'grpc-naming[dns]'"
            ) from exc

    def register(
        self, target: Target, address: Address, *, ttl: float, **options: Any
    ) -> Registration:
        raise NamingError(
            "dns: DNS holds no registrations; publish the server's records in your DNS zone "
            "(A/AAAA, or SRV for ports and weights) and resolve them with dns:///name"
        )


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(DnsBackend())
