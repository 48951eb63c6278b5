"""ZooKeeper faults on real servers: session expiry, a killed or stopped member, a restarted server
process, a node deleted behind our back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kazoo.client import KazooClient

import naming
from backends._zk_client import ZkSettings, default_client_factory
from backends.zookeeper import ZkBackend
from naming import Address, Registration, parse_target
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.zookeeper import ZkEnsemble, ZkServer, expire_session, zkcli
from tests._etcd_helpers import Follower
from tests._zk import kazoo_client

T = TypeVar("T")

A1, A2, A3 = "127.0.0.1:10001", "127.0.0.1:10002", "127.0.0.1:10003"


class RecordingFactory:
    """The default kazoo client factory, keeping every client it made (to expire its session)."""

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def __call__(self, settings: ZkSettings, session_timeout: float) -> Any:
        client = default_client_factory(settings, session_timeout)
        self.clients.append(client)
        return client


@pytest.fixture
def factory() -> RecordingFactory:
    return RecordingFactory()


def register(
    factory: RecordingFactory, target: str, addr: str, ttl: float, **options: Any
) -> Registration:
    return ZkBackend(factory).register(parse_target(target), Address(addr), ttl=ttl, **options)


def children(client: KazooClient, path: str) -> list[tuple[str, int]]:
    """(name, ephemeral owner) of every child of ``path``."""
    found = []
    for child in client.get_children(path):
        stat = client.exists(f"{path}/{child}")
        if stat is not None:
            found.append((child, stat.ephemeralOwner))
    return sorted(found)


@pytest.fixture
def follow() -> Iterator[Any]:
    watchers: list[Any] = []

    def make(target: str, **options: Any) -> Follower:
        watcher = naming.resolve(target, **options)
        watchers.append(watcher)
        follower = Follower(watcher)
        follower.apply(watcher.next(timeout=DEFAULT_TIMEOUT))
        return follower

    yield make
    for watcher in watchers:
        watcher.close()


def test_registering_session_expiry_puts_the_record_back_once(
    zk_server: ZkServer,
    zk_root: str,
    zk_client: KazooClient,
    factory: RecordingFactory,
    follow: Any,
) -> None:
    target = f"zk://{zk_server.endpoint}/svc?root={zk_root}"
    follower = follow(target)
    ttl = 2.0
    with register(factory, target, A1, ttl) as registration:
        follower.wait_for({A1})
        old_session = factory.clients[0].client_id[0]
        expire_session(zk_server.endpoint, factory.clients[0])
        path = f"{zk_root}/svc"

        def back() -> bool:
            found = children(zk_client, path)
            return len(found) == 1 and found[0][1] not in (0, old_session)

        wait_until(back, ttl, "the record back under a new session")
        follower.wait_for({A1})
        assert children(zk_client, path)[0][0] == A1
        assert len(children(zk_client, path)) == 1
        assert not registration.closed


def test_watching_session_expiry_emits_only_the_difference(
    zk_server: ZkServer, zk_root: str, zk_client: KazooClient, factory: RecordingFactory
) -> None:
    path = f"{zk_root}/svc"
    zk_client.create(f"{path}/a", A1.encode(), makepath=True)
    zk_client.create(f"{path}/b", A2.encode())
    target = parse_target(f"zk://{zk_server.endpoint}/svc?root={zk_root}")
    resolver = ZkBackend(factory).build(target, session_timeout=2.0)
    watcher = resolver.resolve(target)
    try:
        follower = Follower(watcher)
        follower.apply(watcher.next(timeout=DEFAULT_TIMEOUT))
        assert follower.addresses == {Address(A1), Address(A2)}
        expire_session(zk_server.endpoint, factory.clients[0])
        zk_client.delete(f"{path}/a")
        zk_client.create(f"{path}/c", A3.encode())
        follower.wait_for({A2, A3})
        updates = [u for batch in follower.history[1:] for u in batch]
        assert sorted((u.op.name, u.address.addr) for u in updates) == [
            ("ADD", A3),
            ("DELETE", A1),
        ]
        assert follower.quiet_for(0.3) == []
    finally:
        resolver.close()


def retried(call: Callable[[], T]) -> T:
    """``call()``, again while the writer's connection moves to another member (bounded)."""
    from kazoo.exceptions import ConnectionLoss, SessionMovedError

    deadline = time.monotonic() + DEFAULT_TIMEOUT
    while True:
        try:
            return call()
        except (ConnectionLoss, SessionMovedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _connected_port(client: Any) -> int:
    sock = client._connection._socket  # kazoo keeps no public name for the server in use
    return int(sock.getpeername()[1])


@pytest.mark.slow
def test_ensemble_kill_the_leader_and_stop_the_used_member(
    zk_ensemble: ZkEnsemble, factory: RecordingFactory, follow: Any
) -> None:
    session = 4.0
    target = f"zk://{zk_ensemble.hosts}/svc?root=/faults"
    writer = kazoo_client(zk_ensemble.hosts)
    try:
        follower = follow(target, session_timeout=session, connect_timeout=2.0)
        with register(factory, target, A1, session, connect_timeout=2.0):
            follower.wait_for({A1})
            leader = zk_ensemble.leader()
            leader.kill()
            retried(lambda: writer.create("/faults/svc/x", A2.encode(), makepath=True))
            follower.wait_for({A1, A2}, timeout=2 * session)
            leader.start()  # three again: a stopped member then leaves a quorum of two

            # SIGSTOP the member the watcher's session is connected to (the first client made)
            watcher_client = factory.clients[0]
            wait_until(lambda: watcher_client.connected, DEFAULT_TIMEOUT, "the watcher connected")
            port = _connected_port(watcher_client)
            member = next(m for m in zk_ensemble.members if m.port == port)
            others = ",".join(
                m.endpoint for m in zk_ensemble.members if m.running and m is not member
            )
            elsewhere = kazoo_client(others)
            member.pause()
            try:  # the change is made elsewhere: through a member that answers
                retried(lambda: elsewhere.delete("/faults/svc/x"))
                retried(lambda: elsewhere.create("/faults/svc/y", A3.encode()))
                follower.wait_for({A1, A3}, timeout=2 * session)
                assert sorted(retried(lambda: elsewhere.get_children("/faults/svc"))) == [A1, "y"]
            finally:
                member.resume()
                elsewhere.stop()
                elsewhere.close()
    finally:
        writer.stop()
        writer.close()


_CHILD = """
import sys, time
import naming
reg = naming.register(sys.argv[1], sys.argv[2], ttl=float(sys.argv[3]))
print("ready", flush=True)
time.sleep(120)
"""


def _start_server_process(target: str, addr: str, ttl: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, target, addr, str(ttl)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # bounded: the registration waits at most connect_timeout
    assert line.strip() == "ready", f"the server process said {line!r}"
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
    child.wait(DEFAULT_TIMEOUT)
    if child.stdout is not None:
        child.stdout.close()


def test_a_restarted_server_process_leaves_exactly_one_record(
    zk_server: ZkServer, zk_root: str, zk_client: KazooClient, follow: Any
) -> None:
    target = f"zk://{zk_server.endpoint}/svc?root={zk_root}"
    path = f"{zk_root}/svc"
    ttl = 3.0
    first = _start_server_process(target, A1, ttl)
    try:
        old_owner = children(zk_client, path)[0][1]
        _kill(first)  # its session lives on for ttl seconds, with its node
        second = _start_server_process(target, A1, ttl)
        try:
            found = children(zk_client, path)
            assert len(found) == 1 and found[0][1] != old_owner  # replaced while the old lives
            follower = follow(target)
            assert follower.addresses == {Address(A1)}
            # the old session expires: the record stays, still exactly one
            deadline = time.monotonic() + 3 * ttl
            while hex(old_owner) in _dump(zk_server) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert hex(old_owner) not in _dump(zk_server)
            assert children(zk_client, path) == found
            assert follower.quiet_for(0.3) == []
        finally:
            _kill(second)
    finally:
        _kill(first)


def _dump(server: ZkServer) -> str:
    from naming.testing.zookeeper import four_letter

    return four_letter(server.port, "dump").lower()


def test_our_node_deleted_with_zkcli_is_put_back(
    zk_server: ZkServer,
    zk_root: str,
    zk_client: KazooClient,
    factory: RecordingFactory,
    follow: Any,
) -> None:
    target = f"zk://{zk_server.endpoint}/svc?root={zk_root}"
    follower = follow(target)
    path = f"{zk_root}/svc/{A1}"
    with register(factory, target, A1, 3.0):
        follower.wait_for({A1})
        created = zk_client.exists(path).czxid
        result = zkcli(zk_server, "delete", path)
        assert result.returncode == 0, result.stderr

        def recreated() -> bool:
            stat = zk_client.exists(path)
            return stat is not None and stat.czxid != created

        wait_until(recreated, DEFAULT_TIMEOUT, "the node created again")
        follower.wait_for({A1})
        assert [c for c, _ in children(zk_client, f"{zk_root}/svc")] == [A1]
        # the watcher saw at most the node going and coming back, nothing else
        updates = [(u.op.name, u.address.addr) for b in follower.history[1:] for u in b]
        assert updates in ([], [("DELETE", A1), ("ADD", A1)]), updates
