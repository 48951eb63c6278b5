"""etcd with TLS and client-certificate auth, and with user/password auth; secrets stay secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import naming
from backends.etcd import EtcdResolver
from naming import NamingError, WatcherClosedError
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.etcd import EtcdServer, TlsFiles, make_tls_files
from tests._etcd_helpers import Follower, keys

PASSWORD = "Pa55-w0rd-that-must-not-leak"


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[tuple[EtcdServer, TlsFiles]]:
    tls = make_tls_files(tmp_path / "tls")
    with EtcdServer(tls=tls, client_cert_auth=True) as server:
        server.start()
        yield server, tls


@pytest.fixture
def auth_etcd(etcd_private: EtcdServer) -> EtcdServer:
    etcd_private.enable_auth("root", PASSWORD)
    return etcd_private


def test_tls_with_a_client_certificate_registers_and_resolves(
    tls_etcd: tuple[EtcdServer, TlsFiles],
) -> None:
    server, tls = tls_etcd
    options = {
        "ca_cert": str(tls.ca),
        "cert_key": str(tls.client_key),
        "cert_cert": str(tls.client_cert),
    }
    target = f"etcd://{server.endpoint}/svc?timeout=2"
    with naming.register(target, "10.0.0.1:80", ttl=2, **options):
        assert list(keys(server, "/services/svc/")) == ["/services/svc/10.0.0.1:80"]
        with naming.resolve(target, **options) as watcher:
            Follower(watcher).wait_for({"10.0.0.1:80"})


def test_tls_without_a_client_certificate_gets_nothing(
    tls_etcd: tuple[EtcdServer, TlsFiles],
) -> None:
    server, tls = tls_etcd
    target = f"etcd://{server.endpoint}/svc?timeout=1"
    server.etcdctl("put", "/services/svc/a", "10.0.0.1:80")
    with naming.resolve(target, ca_cert=str(tls.ca)) as watcher:
        assert watcher.next(timeout=1.5) == []  # refused by the server: no snapshot, ever
    registration = naming.register(target, "10.0.0.2:80", ttl=2, ca_cert=str(tls.ca))
    try:
        assert list(keys(server, "/services/svc/")) == ["/services/svc/a"]
    finally:
        registration.close()


def test_user_and_password_auth_registers_and_resolves(
    auth_etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    target = f"etcd://{auth_etcd.endpoint}/svc?timeout=2&user=root"
    with (
        caplog.at_level(logging.DEBUG),
        naming.register(target, "10.0.0.1:80", ttl=2, password=PASSWORD) as registration,
    ):
        assert "/services/svc/10.0.0.1:80" in keys(auth_etcd, "/services/svc/")
        resolver = naming.build_resolver(target, password=PASSWORD)
        assert isinstance(resolver, EtcdResolver)
        watcher = resolver.resolve(target)
        Follower(watcher).wait_for({"10.0.0.1:80"})
        texts = [repr(registration), repr(resolver), repr(resolver.settings), repr(watcher)]
        resolver.close()
    assert PASSWORD not in caplog.text
    for text in texts:
        assert PASSWORD not in text


def test_a_wrong_password_is_a_clear_error_that_names_no_secret(auth_etcd: EtcdServer) -> None:
    target = f"etcd://{auth_etcd.endpoint}/svc?timeout=2&user=root"
    with pytest.raises(NamingError, match="authentication failed") as raised:
        naming.register(target, "10.0.0.1:80", password="wrong-" + PASSWORD)
    assert PASSWORD not in str(raised.value)
    assert keys(auth_etcd, "/services/svc/") == {}
    watcher = naming.resolve(target, password="wrong-" + PASSWORD)
    with pytest.raises(NamingError, match="authentication failed") as raised:
        wait_until(lambda: watcher.next(timeout=0.2) is None, DEFAULT_TIMEOUT, "an error")
    assert not isinstance(raised.value, WatcherClosedError)
    assert PASSWORD not in str(raised.value)
    watcher.close()


def test_without_credentials_an_auth_enabled_etcd_refuses(auth_etcd: EtcdServer) -> None:
    target = f"etcd://{auth_etcd.endpoint}/svc?timeout=2"
    auth_etcd.etcdctl("put", "/services/svc/a", "10.0.0.1:80")
    watcher = naming.resolve(target)
    with pytest.raises(NamingError, match="etcd: get on"):
        wait_until(lambda: watcher.next(timeout=0.2) is None, DEFAULT_TIMEOUT, "an error")
    watcher.close()
