"""The conformance suite on the etcd backend, with every capability.

The driver writes through a bare etcd3 client of its own and compacts with the harness, never
through the backend under test. Most checks share the session's etcd server under a fresh key
prefix. An outage stops and starts a private server (``check_needs`` says when one is needed); a
partition cuts a TcpProxy between the backend and the shared server, while the driver goes on
writing and compacting past it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import etcd3
import pytest

from naming.testing.conformance import BackendConformance, RegistryDriver, check_needs
from naming.testing.etcd import EtcdServer
from naming.testing.proxy import TcpProxy


class EtcdDriver(RegistryDriver):
    """Records under ``{prefix}/svc/{instance_id}`` on ``server``, as JSON ``{"addr", "metadata"}``."""

    capabilities = frozenset(
        {"updates", "metadata", "raw", "register", "outage", "partition", "compact"}
    )
    bad_targets = (
        "etcd://127.0.0.1:notaport/svc",  # a bad host in the authority
        "etcd://127.0.0.1:2379/svc?password=secret",  # a secret in the target
    )

    def __init__(self, server: EtcdServer, prefix: str, *, proxy: bool = False) -> None:
        self.server = server
        self.prefix = prefix
        self.proxy = TcpProxy(server.endpoint) if proxy else None
        self._client: Any = None
        self._connect()

    def target(self) -> str:
        endpoint = self.proxy.endpoint if self.proxy is not None else self.server.endpoint
        return f"etcd://{endpoint}/svc?prefix={self.prefix}"

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        record: dict[str, Any] = {"addr": addr}
        if metadata is not None:
            record["metadata"] = dict(metadata)
        self.put_raw(instance_id, json.dumps(record).encode())

    def delete(self, instance_id: str) -> None:
        self._client.delete(self._key(instance_id))

    def put_raw(self, instance_id: str, value: bytes) -> None:
        self._client.put(self._key(instance_id), value)

    def outage(self) -> None:
        self._disconnect()
        self.server.stop()

    def restore(self) -> None:
        self.server.start()
        self._connect()  # a client that saw etcd go away refuses it for minutes: take a new one

    def partition(self) -> None:
        self._proxy().cut()

    def heal(self) -> None:
        self._proxy().heal()

    def compact(self) -> None:
        self.server.compact()

    def close(self) -> None:
        self._disconnect()
        if self.proxy is not None:
            self.proxy.close()

    def _proxy(self) -> TcpProxy:
        if self.proxy is None:
            raise RuntimeError("etcd: this driver was made without a proxy to cut")
        return self.proxy

    def _key(self, instance_id: str) -> str:
        return f"{self.prefix}/svc/{instance_id}"

    def _connect(self) -> None:
        self._client = etcd3.client(host=self.server.host, port=self.server.port, timeout=5)

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


@pytest.fixture
def naming_registry_driver(
    request: pytest.FixtureRequest, etcd_server: EtcdServer
) -> Iterator[EtcdDriver]:
    # etcd_server is a parameter, not looked up below: a session server started in the middle of
    # a check would count as a process the check leaked
    needs = check_needs(request)
    if "outage" in needs:
        server: EtcdServer = request.getfixturevalue("etcd_private")
        prefix = "/conformance"
    else:
        server = etcd_server
        prefix = request.getfixturevalue("etcd_prefix")
    with EtcdDriver(server, prefix, proxy="partition" in needs) as driver:
        yield driver


class TestEtcdConformance(BackendConformance):
    driver_class = EtcdDriver
