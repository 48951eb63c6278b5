"""ZooKeeper security on real servers: digest ACLs, TLS with certificates made here, no secrets in
logs or reprs (kazoo's own lowest-level logging included)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

import naming
from naming import Address
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.etcd import make_tls_files
from naming.testing.zookeeper import ZkServer
from tests._etcd_helpers import Follower
from tests._zk import kazoo_client

A1 = "127.0.0.1:10001"
PASSWORD = "s3cret-Pa55word"


def test_digest_auth_lets_only_the_creator_change_the_record(
    zk_server: ZkServer, zk_root: str, zk_client: KazooClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)  # everything, kazoo's BLATHER (level 5) auth packets included
    target = f"zk://{zk_server.endpoint}/svc?root={zk_root}"
    path = f"{zk_root}/svc/{A1}"
    registration = naming.register(target, A1, ttl=3.0, username="owner", password=PASSWORD)
    watcher = naming.resolve(target)  # reading needs no credentials
    anonymous = kazoo_client(zk_server.endpoint)
    other = kazoo_client(zk_server.endpoint, auth_data=[("digest", "intruder:other")])
    try:
        follower = Follower(watcher)
        follower.apply(watcher.next(timeout=DEFAULT_TIMEOUT))
        assert follower.addresses == {Address(A1)}
        refused = []
        for client in (anonymous, other):
            for attempt in (lambda c=client: c.delete(path), lambda c=client: c.set(path, b"x")):
                with pytest.raises(NoAuthError):
                    attempt()
                refused.append(True)
        assert refused == [True] * 4
        assert zk_client.get(path)[0] == b'{"addr":"127.0.0.1:10001"}'
        # the parents stay open: another server can register beside it
        anonymous.create(f"{zk_root}/svc/beside", b"127.0.0.1:10002")
        follower.wait_for({A1, "127.0.0.1:10002"})
        shown = " ".join([repr(registration), repr(watcher), caplog.text])
        assert "<hidden>" in caplog.text  # the auth packet was logged, without its secret
        assert PASSWORD not in shown
    finally:
        for client in (anonymous, other):
            client.stop()
            client.close()
        watcher.close()
        registration.close()
    assert zk_client.exists(path) is None  # close() deleted it, with the creator's rights


def test_a_password_in_the_target_is_refused(zk_server: ZkServer) -> None:
    with pytest.raises(naming.TargetError, match="pass password as a keyword option"):
        naming.resolve(f"zk://{zk_server.endpoint}/svc?username=u&password={PASSWORD}")


@pytest.fixture
def zk_tls(tmp_path: Path) -> Iterator[ZkServer]:
    with ZkServer(tls=make_tls_files(tmp_path / "tls")) as server:
        yield server.start()


def test_tls_with_a_client_certificate(zk_tls: ZkServer) -> None:
    files = zk_tls.tls
    target = f"zk://127.0.0.1:{zk_tls.secure_port}/svc?root=/tls"
    tls = {
        "ca_cert": str(files.ca),
        "cert_cert": str(files.client_cert),
        "cert_key": str(files.client_key),
    }
    with naming.register(target, A1, ttl=3.0, **tls):
        watcher = naming.resolve(target, **tls)
        try:
            follower = Follower(watcher)
            follower.apply(watcher.next(timeout=DEFAULT_TIMEOUT))
            assert follower.addresses == {Address(A1)}
        finally:
            watcher.close()
    plain = kazoo_client(zk_tls.endpoint)  # the same tree on the plain port
    try:
        assert plain.get_children("/tls/svc") == []
    finally:
        plain.stop()
        plain.close()


def test_kazoo_logs_go_through_the_redacting_logger(caplog: pytest.LogCaptureFixture) -> None:
    from backends._zk_client import _kazoo_log, _Redacting

    caplog.set_level(1, logger="naming.zk.kazoo")
    adapter = _Redacting(_kazoo_log, ("u:" + PASSWORD, PASSWORD))
    adapter.log(5, "Sending request(xid=%s): %s", 1, f"Auth(scheme='digest', auth='u:{PASSWORD}')")
    adapter.debug("plain %s", "text")
    assert [r.getMessage() for r in caplog.records] == [
        "Sending request(xid=1): Auth(scheme='digest', auth='<hidden>')",
        "plain text",
    ]
    assert logging.getLogger("naming.zk.kazoo").name.startswith("naming.")
