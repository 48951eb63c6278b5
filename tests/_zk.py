"""pytest plugin: real ZooKeeper servers from naming.testing.zookeeper, logs shown on failure.

Fixtures:

* ``zk_server`` (session): one shared standalone server. Do not stop it; take a fresh root from
  ``zk_root`` instead.
* ``zk_root``: ``/t/<uuid>`` on the shared server; the nodes under it are deleted afterwards.
* ``zk_client``: a started kazoo client on the shared server, for writing records directly; it is
  the super user (every ACL lets it through), so that ``zk_root`` can clean up.
* ``zk_private``: a standalone server of the test's own, free to stop, kill, pause or restart.
* ``zk_ensemble``: a 3-member ensemble of the test's own.

When a test fails, the report gets a section per ZooKeeper server it used with the tail of that
server's log (for the shared server, only what was logged since the test began).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from naming.testing.zookeeper import ZkEnsemble, ZkServer

LOG_LINES = 60

_offsets = pytest.StashKey[dict[int, int]]()


def _servers(item: pytest.Item) -> list[ZkServer]:
    found: list[ZkServer] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, ZkServer):
            found.append(value)
        elif isinstance(value, ZkEnsemble):
            found.extend(value.members)
    return list({id(s): s for s in found}.values())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    servers = _servers(item)
    shared = getattr(item, "funcargs", {}).get("zk_server")
    if call.when == "setup":
        item.stash[_offsets] = {id(s): s.log_offset for s in servers}
    elif report.failed and servers:
        offsets = item.stash.get(_offsets, {})
        for server in servers:
            since = offsets.get(id(server), 0) if server is shared else 0
            try:
                tail = server.log_tail(LOG_LINES, since=since) or "(nothing logged during the test)"
            except OSError as exc:  # a server closed by the test, its directory removed
                tail = f"(no log: {exc})"
            title = f"zookeeper {server.name} {server.endpoint} log {server.log_path}"
            report.sections.append((f"{title} ({call.when})", tail))
    return report


def kazoo_client(hosts: str, **options: Any) -> KazooClient:
    """A started kazoo client (the caller stops and closes it)."""
    client = KazooClient(hosts=hosts, timeout=options.pop("timeout", 5.0), **options)
    client.start(timeout=10)
    return client


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZkServer]:
    with ZkServer(name="zk-shared", super_password=secrets.token_urlsafe(12)) as server:
        yield server.start()


@pytest.fixture
def zk_client(zk_server: ZkServer) -> Iterator[KazooClient]:
    client = kazoo_client(zk_server.endpoint, auth_data=[zk_server.super_auth])
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_root(zk_server: ZkServer, zk_client: KazooClient) -> Iterator[str]:
    root = f"/t/{uuid.uuid4().hex}"
    yield root
    if zk_server.running and not zk_server.paused and zk_client.connected:
        zk_client.delete(root, recursive=True)


@pytest.fixture
def zk_private() -> Iterator[ZkServer]:
    with ZkServer() as server:
        yield server.start()


@pytest.fixture
def zk_ensemble() -> Iterator[ZkEnsemble]:
    with ZkEnsemble(3) as ensemble:
        yield ensemble.start()
