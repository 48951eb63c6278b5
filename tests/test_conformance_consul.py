"""The conformance suite on the Consul backend, against the Consul double (naming.testing.consul).

The driver writes through a bare py-consul client of its own, never through the backend: a record
is a check-less agent service (so it passes). An outage stops the double; a partition cuts a
TcpProxy between the backend and the double while the driver goes on writing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from naming.testing.conformance import BackendConformance, RegistryDriver
from naming.testing.consul import ConsulDouble
from naming.testing.proxy import TcpProxy

from ._consul import FAST, bare_client, put_service


class ConsulDriver(RegistryDriver):
    """Services named ``svc`` on a double of their own."""

    capabilities = frozenset({"updates", "register", "outage", "partition"})
    bad_targets = (
        "consul://127.0.0.1:notaport/svc",
        "consul://127.0.0.1:8500/svc?token=secret",  # a secret in the target
        "consul://127.0.0.1:8500,127.0.0.1:8501/svc",  # one agent only
    )

    def __init__(self, double: ConsulDouble) -> None:
        self.double = double
        self.proxy = TcpProxy(double.endpoint)
        self.client = bare_client(double)

    @property
    def resolve_options(self) -> Mapping[str, Any]:
        return FAST

    @property
    def register_options(self) -> Mapping[str, Any]:
        return {"timeout": 2.0}

    def target(self) -> str:
        return f"consul://{self.proxy.endpoint}/svc"

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        put_service(self.client, "svc", instance_id, addr)

    def delete(self, instance_id: str) -> None:
        assert self.client.agent.service.deregister(instance_id)

    def outage(self) -> None:
        self.double.stop()

    def restore(self) -> None:
        self.double.start()

    def partition(self) -> None:
        self.proxy.cut()

    def heal(self) -> None:
        self.proxy.heal()

    def close(self) -> None:
        self.proxy.close()
        self.client.http.close()


@pytest.fixture
def naming_registry_driver() -> Iterator[ConsulDriver]:
    with ConsulDouble() as double, ConsulDriver(double) as driver:
        yield driver


class TestConsulConformance(BackendConformance):
    driver_class = ConsulDriver
