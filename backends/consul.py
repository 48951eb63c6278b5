"""consul: ``consul://127.0.0.1:8500/hello?tag=v1&dc=dc1&passing=true``.

Clients resolve with blocking queries on the agent's ``/v1/health/service/<name>``
(:mod:`._consul_watch`); servers register an agent service with a TTL check
(:mod:`._consul_register`). Options (in the target's query or as keyword arguments; keywords win):
``tag`` (one tag, or several comma-separated or as a list: an instance must have all), ``dc``,
``passing`` (default true: only instances whose checks all pass), ``near``, ``wait`` (seconds a
blocking query may wait, default 60), ``consistency`` (``default``, ``consistent`` or ``stale``),
``timeout`` (seconds per request, default 5), ``token`` (an ACL token, only as a keyword; else
``CONSUL_HTTP_TOKEN``), ``ca_cert`` (TLS; else ``CONSUL_CACERT``), ``cert_cert`` and ``cert_key``
(a client certificate); for ``register`` also ``instance_id``, ``tags``, ``check`` (``ttl`` or
``grpc``), ``deregister_after`` (seconds) and ``close_timeout``. With no authority in the target,
``CONSUL_HTTP_ADDR`` names the agent (default 127.0.0.1:8500). Needs
``pip install 'grpc-naming[consul]'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from naming.core import Address, Backend, Registration, Resolver, Target, WatchingResolver, hookimpl

from ._consul_client import REGISTER_OPTIONS, ConsulConnection, ConsulSettings, settings_from
from ._consul_register import ConsulRegistration
from ._consul_watch import ConsulWatcher

__all__ = ["ConsulBackend", "ConsulRegistration", "ConsulResolver", "ConsulWatcher"]


class ConsulResolver(WatchingResolver):
    """Makes a ConsulWatcher (with its own connection) per ``resolve()``; ``close()`` closes them."""

    def __init__(self, settings: ConsulSettings) -> None:
        self.settings = settings
        super().__init__()

    def _watch(self, service: str) -> ConsulWatcher:
        return ConsulWatcher(ConsulConnection(dataclasses.replace(self.settings, service=service)))

    def __repr__(self) -> str:
        return f"<ConsulResolver {self.settings!r}>"


class ConsulBackend(Backend):
    schemes = ("consul",)
    requires = (("consul", "grpc-naming[consul]"),)

    def build(self, target: Target, **options: Any) -> Resolver:
        return ConsulResolver(settings_from(target, options))

    def register(
        self, target: Target, address: Address, *, ttl: float, **options: Any
    ) -> Registration:
        settings = settings_from(target, options, REGISTER_OPTIONS)
        # each request waits less than the TTL lasts, so a hung agent is retried in time
        settings = dataclasses.replace(settings, timeout=min(settings.timeout, max(ttl / 3, 1.0)))
        extra = settings.extra
        return ConsulRegistration(
            ConsulConnection(settings),
            address,
            ttl=ttl,
            instance_id=extra.get("instance_id"),
            tags=extra.get("tags") or (),
            check=extra.get("check") or "ttl",
            deregister_after=extra.get("deregister_after"),
            close_timeout=extra.get("close_timeout") or 2.0,
        )


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(ConsulBackend())
