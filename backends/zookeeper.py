"""ZooKeeper: ``zk://127.0.0.1:2181,127.0.0.1:2182/hello?root=/services`` (alias ``zookeeper://``).

Servers register with ``naming.register(target, addr, ttl=10)``: an ephemeral node
``{root}/{service}/{instance_id}`` of a session whose timeout is the ttl, put back after the
session is lost or the node deleted. Clients resolve the same target: the children of
``{root}/{service}`` are the instances, their data the records (ours, a bare ``host:port``, or an
Apache Curator service instance: set ``root`` to Curator's basePath).

Options (in the target's query or as keyword arguments; keywords win): ``root`` (default
``/services``), ``session_timeout`` (seconds, default 10; for ``register`` the ttl),
``connect_timeout`` (seconds per connection attempt and per call, default 5), ``username`` and
``password`` (digest auth; the password only as a keyword), ``ca_cert``, ``cert_cert`` and
``cert_key`` (paths, for TLS and a client certificate), and for ``register`` also
``instance_id``, ``record_format`` (``json``, ours, or ``curator``) and ``close_timeout``.
Needs ``pip install 'grpc-naming[zookeeper]'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from naming.core import Address, Backend, Registration, Resolver, Target, WatchingResolver, hookimpl

from ._zk_client import (
    REGISTER_OPTIONS,
    ClientFactory,
    ZkSettings,
    default_client_factory,
    settings_from,
)
from ._zk_register import DEFAULT_CLOSE_TIMEOUT, ZkRegistration
from ._zk_watch import ZkWatcher

__all__ = ["ZkBackend", "ZkRegistration", "ZkResolver", "ZkSettings", "ZkWatcher"]


class ZkResolver(WatchingResolver):
    """Makes a ZkWatcher (with its own session) per ``resolve()``; ``close()`` closes them."""

    def __init__(self, settings: ZkSettings, factory: ClientFactory = default_client_factory):
        self.settings = settings
        self._factory = factory
        super().__init__()

    def _watch(self, service: str) -> ZkWatcher:
        return ZkWatcher(dataclasses.replace(self.settings, service=service), self._factory)

    def __repr__(self) -> str:
        return f"<ZkResolver {self.settings!r}>"


class ZkBackend(Backend):
    schemes = ("zk", "zookeeper")
    requires = (("kazoo", "grpc-naming[zookeeper]"),)

    def __init__(self, factory: ClientFactory = default_client_factory) -> None:
        self._factory = factory

    def build(self, target: Target, **options: Any) -> Resolver:
        return ZkResolver(settings_from(target, options), self._factory)

    def register(
        self, target: Target, address: Address, *, ttl: float, **options: Any
    ) -> Registration:
        settings = settings_from(target, options, REGISTER_OPTIONS)
        return ZkRegistration(
            settings,
            self._factory,
            address,
            ttl=ttl,
            instance_id=settings.extra.get("instance_id"),
            record_format=settings.extra.get("record_format") or "json",
            close_timeout=settings.extra.get("close_timeout") or DEFAULT_CLOSE_TIMEOUT,
        )


@hookimpl
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    register(ZkBackend())
