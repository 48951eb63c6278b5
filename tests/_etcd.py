"""pytest plugin: real etcd servers from naming.testing.etcd, with their logs shown on failure.

Fixtures:

* ``etcd_server`` (session): one shared single-member server. Do not stop it or enable auth on it;
  take a fresh key prefix from ``etcd_prefix`` instead.
* ``etcd_prefix``: ``/t/<uuid>`` on the shared server; the keys under it are deleted afterwards.
* ``etcd_private``: a server of the test's own, free to stop, kill, pause, restart or lock down.
* ``etcd_cluster``: a 3-member cluster of the test's own.

When a test fails, the report gets a section per etcd member it used with the tail of that
member's log (for the shared server, only what was logged since the test began), and one per
naming.testing.process.ManagedProcess the test had as a fixture value (any real server of its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator

import pytest

from naming.testing.etcd import EtcdCluster, EtcdServer
from naming.testing.process import ManagedProcess

LOG_LINES = 60

_offsets = pytest.StashKey[dict[int, int]]()


def _servers(item: pytest.Item) -> list[EtcdServer | ManagedProcess]:
    found: list[EtcdServer | ManagedProcess] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, (EtcdServer, ManagedProcess)):
            found.append(value)
        elif isinstance(value, EtcdCluster):
            found.extend(value.members)
    return list({id(s): s for s in found}.values())


def _title(server: EtcdServer | ManagedProcess) -> str:
    if isinstance(server, EtcdServer):
        return f"etcd {server.name} {server.url} log {server.log_path}"
    return f"{server.component} {server.name} ports {list(server.ports)} log {server.log_path}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    servers = _servers(item)
    shared = getattr(item, "funcargs", {}).get("etcd_server")
    if call.when == "setup":
        item.stash[_offsets] = {id(s): s.log_offset for s in servers}
    elif report.failed and servers:
        offsets = item.stash.get(_offsets, {})
        for server in servers:
            since = offsets.get(id(server), 0) if server is shared else 0
            tail = server.log_tail(LOG_LINES, since=since) or "(nothing logged during the test)"
            report.sections.append((f"{_title(server)} ({call.when})", tail))
    return report


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    with EtcdServer(name="shared") as server:
        yield server.start()


@pytest.fixture
def etcd_prefix(etcd_server: EtcdServer) -> Iterator[str]:
    prefix = f"/t/{uuid.uuid4().hex}"
    yield prefix
    if etcd_server.running and not etcd_server.paused:
        etcd_server.etcdctl("del", "--prefix", prefix, check=False)


@pytest.fixture
def etcd_private() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server.start()


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster(3) as cluster:
        yield cluster.start()
