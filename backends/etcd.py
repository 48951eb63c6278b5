"""etcd: ``etcd://127.0.0.1:2379,127.0.0.1:22379/hello?prefix=/services``.

Servers register with ``naming.register(target, addr, ttl=10)``: a record under
``{prefix}/{service}/{instance_id}`` attached to a lease that a background thread keeps alive.
Clients resolve the same target: a snapshot of the prefix, then a watch from its revision + 1.

Options (in the target's query or as keyword arguments; keywords win): ``prefix`` (default
``/services``; any string, ``""`` for keys ``{service}/...``), ``timeout`` (seconds per etcd call,
default 5), ``user`` and ``password`` (the password only as a keyword), ``ca_cert``, ``cert_key`` and
``cert_cert`` (paths, for TLS and client-certificate auth), and for ``register`` also
``instance_id`` and ``close_timeout`` (how long ``close()`` and ``pause()`` wait for etcd, default
2 s). Needs ``pip install 'grpc-naming[etcd]'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from naming.core import Address, Backend, Registration, Resolver, Target, WatchingResolver, hookimpl

from ._etcd_client import (
    REGISTER_OPTIONS,
    ClientFactory,
    EtcdConnection,
    EtcdSettings,
    default_client_factory,
    settings_from,
)
from ._etcd_register import DEFAULT_CLOSE_TIMEOUT, EtcdRegistration, call_timeout
from ._etcd_watch import EtcdWatcher

__all__ = ["EtcdBackend", "EtcdRegistration", "EtcdResolver", "EtcdSettings", "EtcdWatcher"]


class EtcdResolver(WatchingResolver):
    """Makes an EtcdWatcher (with its own connection) per ``resolve()``; ``close()`` closes them."""

    def __init__(self, settings: EtcdSettings, factory: ClientFactory = default_client_factory):
        self.settings = settings
        self._factory = factory
        super().__init__()

    def _watch(self, service: str) -> EtcdWatcher:
        settings = dataclasses.replace(self.settings, service=service)
        return EtcdWatcher(EtcdConnection(settings, self._factory))

    def __repr__(self) -> str:
        return f"<EtcdResolver {self.settings!r}>"


class EtcdBackend(Backend):
    schemes = ("etcd",)
    requires = (("etcd3", "grpc-naming[etcd]"),)

    def __init__(self, factory: ClientFactory = default_client_factory) -> None:
        self._factory = factory

    def build(self, target: Target, **options: Any) -> Resolver:
        return EtcdResolver(settings_from(target, options), self._factory)

    def register(
        self, target: Target, address: Address, *, ttl: float, **options: Any
    ) -> Registration:
        settings = settings_from(target, options, REGISTER_OPTIONS)
        # each call waits less than the lease lasts, so a hung member is left in time
        settings = dataclasses.replace(settings, timeout=call_timeout(settings.timeout, ttl))
        close_timeout = settings.extra.get("close_timeout") or DEFAULT_CLOSE_TIMEOUT
        return EtcdRegistration(
            EtcdConnection(settings, self._factory),
            address,
            ttl=ttl,
            instance_id=settings.extra.get("instance_id"),
            close_timeout=close_timeout,
        )


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(EtcdBackend())
