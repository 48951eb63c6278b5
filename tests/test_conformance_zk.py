"""The conformance suite on the ZooKeeper backend.

The driver writes through a kazoo client of its own under a fresh root on the session's shared
server. An outage stops and starts a private server; a partition cuts a TcpProxy between the
backend and the shared server while the driver goes on writing. ZooKeeper keeps no history to
compact, so ``compact`` is not declared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kazoo.client import KazooClient

from naming.testing.conformance import BackendConformance, RegistryDriver, check_needs
from naming.testing.proxy import TcpProxy
from naming.testing.zookeeper import ZkServer
from tests._zk import kazoo_client


class ZkDriver(RegistryDriver):
    """Records as nodes ``{root}/svc/{instance_id}`` holding ``{"addr", "metadata"}``."""

    capabilities = frozenset({"updates", "metadata", "raw", "register", "outage", "partition"})
    bad_targets = (
        "zk://127.0.0.1:notaport/svc",  # a bad host in the authority
        "zk://127.0.0.1:2181/svc?password=secret",  # a secret in the target
    )

    def __init__(self, server: ZkServer, root: str, *, proxy: bool = False) -> None:
        self.server = server
        self.root = root
        self.proxy = TcpProxy(server.endpoint) if proxy else None
        self._client: KazooClient | None = kazoo_client(server.endpoint)

    @property
    def resolve_options(self) -> Mapping[str, Any]:
        return {"session_timeout": 4.0, "connect_timeout": 2.0}

    @property
    def register_options(self) -> Mapping[str, Any]:
        return {"connect_timeout": 2.0}

    def target(self) -> str:
        endpoint = self.proxy.endpoint if self.proxy is not None else self.server.endpoint
        return f"zk://{endpoint}/svc?root={self.root}"

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        record: dict[str, Any] = {"addr": addr}
        if metadata is not None:
            record["metadata"] = dict(metadata)
        self.put_raw(instance_id, json.dumps(record).encode())

    def put_raw(self, instance_id: str, value: bytes) -> None:
        client = self._require()
        path = self._path(instance_id)
        if client.exists(path):
            client.set(path, value)
        else:
            client.create(path, value, makepath=True)

    def delete(self, instance_id: str) -> None:
        self._require().delete(self._path(instance_id))

    def outage(self) -> None:
        self._disconnect()
        self.server.stop()

    def restore(self) -> None:
        self.server.start()
        self._client = kazoo_client(self.server.endpoint)

    def partition(self) -> None:
        self._proxy().cut()

    def heal(self) -> None:
        self._proxy().heal()

    def close(self) -> None:
        self._disconnect()
        if self.proxy is not None:
            self.proxy.close()

    def _proxy(self) -> TcpProxy:
        if self.proxy is None:
            raise RuntimeError("zk: this driver was made without a proxy to cut")
        return self.proxy

    def _require(self) -> KazooClient:
        if self._client is None:
            raise RuntimeError("zk: the driver's client is closed (outage in progress)")
        return self._client

    def _path(self, instance_id: str) -> str:
        return f"{self.root}/svc/{instance_id}"

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.stop()
            client.close()


@pytest.fixture
def naming_registry_driver(
    request: pytest.FixtureRequest, zk_server: ZkServer
) -> Iterator[ZkDriver]:
    needs = check_needs(request)
    if "outage" in needs:
        server: ZkServer = request.getfixturevalue("zk_private")
        root = "/conformance"
    else:
        server = zk_server
        root = request.getfixturevalue("zk_root")
    with ZkDriver(server, root, proxy="partition" in needs) as driver:
        yield driver


class TestZkConformance(BackendConformance):
    driver_class = ZkDriver
