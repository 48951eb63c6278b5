"""The conformance suite on the dns backend, through a real dnsmasq.

DNS has its own record rules, so the driver fits them: each instance is an SRV record of the test's
service name (``_grpc._tcp.<service>.example.com``) pointing at a host name of its own whose A or
AAAA record holds the instance's IP, and whose port is the instance's port. SRV records live in
dnsmasq's config, so every put and delete restarts the server (the watcher rides that out as an
outage). Weights are all equal, so the addresses carry no metadata. DNS holds no registrations and
no foreign records; an outage is the server stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from naming import split_host_port
from naming.testing.conformance import BackendConformance, RegistryDriver
from naming.testing.dns import DnsServer, SrvRecord

_services = itertools.count()


class DnsDriver(RegistryDriver):
    """Writes SRV and host records into a dnsmasq of its own (a new service name per test)."""

    capabilities = frozenset({"updates", "outage"})
    bad_targets = (
        "dns:///_grpc._tcp.hello.example.com:50051",  # an SRV name takes no port
        "dns:///hello.example.com:99999",  # no such port
        "dns:///hello.example.com:0",  # port 0
        "dns:///bad_host!:50051",  # not a host name
    )

    def __init__(self) -> None:
        self.server = DnsServer(ttl=1)
        self.server.start()
        self.service = f"_grpc._tcp.svc{next(_services)}.example.com"
        self._records: dict[str, tuple[str, int]] = {}

    @property
    def resolve_options(self) -> Mapping[str, Any]:
        return {"min_interval": 0.2, "timeout": 0.5, "grace": 0.2}

    def target(self) -> str:
        return self.server.target(self.service)

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        if metadata is not None:
            raise ValueError("dns: an SRV record carries no metadata but its weight")
        host, port = split_host_port(addr)
        name = f"{instance_id}.{self.service.removeprefix('_grpc._tcp.')}"
        self.server.set_hosts(name, [host.strip("[]")])
        self._records[instance_id] = (name, port)
        self._publish()

    def delete(self, instance_id: str) -> None:
        name, _ = self._records.pop(instance_id)
        self._publish()
        self.server.set_hosts(name, [])

    def outage(self) -> None:
        self.server.stop()

    def restore(self) -> None:
        self.server.start()

    def close(self) -> None:
        self.server.close()

    def _publish(self) -> None:
        records = [SrvRecord(name, port) for name, port in self._records.values()]
        self.server.set_srv(self.service, records)


@pytest.fixture
def naming_registry_driver() -> Iterator[DnsDriver]:
    with DnsDriver() as driver:
        yield driver


class TestDnsConformance(BackendConformance):
    driver_class = DnsDriver
