"""The conformance suite on the manual backend: updates, metadata and registration; no outages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from naming import Address
from naming.testing import ManualResolver
from naming.testing.conformance import BackendConformance, RegistryDriver


class ManualDriver(RegistryDriver):
    """A published ManualResolver of its own; each put or delete sends the difference to watchers.

    The suite never mixes ``put`` with ``naming.register`` in one check, so the driver may set the
    resolver's whole address list.
    """

    capabilities = frozenset({"updates", "metadata", "register"})

    def __init__(self) -> None:
        self.resolver = ManualResolver(name=f"conformance-{uuid.uuid4().hex[:12]}")
        self._records: dict[str, Address] = {}

    def target(self) -> str:
        return f"manual:///{self.resolver.name}"

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        self._records[instance_id] = Address(addr, metadata)
        self.resolver.set_addresses(self._records.values())

    def delete(self, instance_id: str) -> None:
        del self._records[instance_id]
        self.resolver.set_addresses(self._records.values())

    def close(self) -> None:
        self.resolver.close()


@pytest.fixture
def naming_registry_driver() -> Iterator[ManualDriver]:
    with ManualDriver() as driver:
        yield driver


class TestManualConformance(BackendConformance):
    driver_class = ManualDriver
