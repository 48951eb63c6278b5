"""Registration in a real etcd: lease, keepalive, outages, deletions, duplicates, close."""

from __future__ import annotations

import json
import time

import pytest

import naming
from backends.etcd import EtcdRegistration
from naming import Address, NamingError
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.etcd import EtcdServer
from tests._etcd_helpers import keys


def target(server: EtcdServer, prefix: str) -> str:
    return f"etcd://{server.endpoint}/svc?prefix={prefix}&timeout=2"


def lease_of(server: EtcdServer, key: str) -> int:
    data = json.loads(server.etcdctl("get", key, "-w", "json").stdout)
    return int(data["kvs"][0].get("lease", 0))


def test_register_puts_one_json_record_under_a_lease_and_close_removes_it_at_once(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    registration = naming.register(
        target(etcd_server, etcd_prefix), "10.0.0.1:80", {"zone": "z1"}, ttl=5
    )
    assert isinstance(registration, EtcdRegistration)
    key = f"{etcd_prefix}/svc/10.0.0.1:80"
    assert keys(etcd_server, etcd_prefix) == {
        key: '{"addr":"10.0.0.1:80","metadata":{"zone":"z1"}}'
    }
    assert lease_of(etcd_server, key) == registration.lease != 0
    ttl_line = etcd_server.etcdctl("lease", "timetolive", format(registration.lease, "x")).stdout
    assert "granted with TTL(5s)" in ttl_line
    registration.close()
    registration.close()
    assert keys(etcd_server, etcd_prefix) == {}
    assert registration.closed


def test_the_lease_is_kept_alive_past_its_ttl(etcd_server: EtcdServer, etcd_prefix: str) -> None:
    with naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=1):
        lease = lease_of(etcd_server, f"{etcd_prefix}/svc/10.0.0.1:80")
        time.sleep(2.5)  # more than twice the TTL: only the keepalive can have kept it
        assert list(keys(etcd_server, etcd_prefix)) == [f"{etcd_prefix}/svc/10.0.0.1:80"]
        assert lease_of(etcd_server, f"{etcd_prefix}/svc/10.0.0.1:80") == lease


def test_a_record_deleted_by_someone_else_is_put_back(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    with naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=2):
        key = f"{etcd_prefix}/svc/10.0.0.1:80"
        etcd_server.etcdctl("del", key)
        wait_until(
            lambda: key in keys(etcd_server, etcd_prefix), DEFAULT_TIMEOUT, "the record put back"
        )
        etcd_server.etcdctl("put", key, "10.6.6.6:80")  # overwritten without a lease
        wait_until(
            lambda: keys(etcd_server, etcd_prefix).get(key) == '{"addr":"10.0.0.1:80"}',
            DEFAULT_TIMEOUT,
            "our value back",
        )
        assert len(keys(etcd_server, etcd_prefix)) == 1


def test_a_revoked_lease_is_replaced_and_the_record_put_again(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    with naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=2) as registration:
        old = registration.lease
        assert old is not None
        etcd_server.etcdctl("lease", "revoke", format(old, "x"))
        wait_until(
            lambda: registration.lease not in (None, old) and keys(etcd_server, etcd_prefix),
            DEFAULT_TIMEOUT,
            "a new lease with the record",
        )
        assert lease_of(etcd_server, f"{etcd_prefix}/svc/10.0.0.1:80") == registration.lease


def test_etcd_stopped_longer_than_the_ttl_the_record_returns_exactly_once(
    etcd_private: EtcdServer, etcd_prefix: str
) -> None:
    with naming.register(target(etcd_private, etcd_prefix), "10.0.0.1:80", ttl=1) as registration:
        etcd_private.stop()
        time.sleep(2.5)  # the keepalive fails for longer than the TTL
        etcd_private.start()
        key = f"{etcd_prefix}/svc/10.0.0.1:80"
        wait_until(
            lambda: key in keys(etcd_private, etcd_prefix), DEFAULT_TIMEOUT, "the record back"
        )
        for _ in range(4):  # several keepalive rounds later: still exactly one record, alive
            time.sleep(0.4)
            assert list(keys(etcd_private, etcd_prefix)) == [key]
        assert lease_of(etcd_private, key) == registration.lease


def test_a_registration_made_while_etcd_is_down_appears_when_it_comes_up(
    etcd_private: EtcdServer, etcd_prefix: str
) -> None:
    etcd_private.stop()
    with naming.register(target(etcd_private, etcd_prefix), "10.0.0.1:80", ttl=2):
        etcd_private.start()
        wait_until(lambda: bool(keys(etcd_private, etcd_prefix)), DEFAULT_TIMEOUT, "the record")


def test_two_registrations_of_one_address_make_one_record(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    first = naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=2)
    second = naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=2)
    for _ in range(3):
        assert list(keys(etcd_server, etcd_prefix)) == [f"{etcd_prefix}/svc/10.0.0.1:80"]
        time.sleep(0.5)
    first.close()
    wait_until(
        lambda: bool(keys(etcd_server, etcd_prefix)),
        DEFAULT_TIMEOUT,
        "the record kept by the second",
    )
    second.close()
    assert keys(etcd_server, etcd_prefix) == {}


def test_a_restarted_server_replaces_its_old_record(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    key = f"{etcd_prefix}/svc/10.0.0.1:80"
    lease = etcd_server.etcdctl("lease", "grant", "30").stdout.split()[
        1
    ]  # "lease <id> granted ..."
    etcd_server.etcdctl("put", key, '{"addr":"10.0.0.1:80"}', "--lease", lease)  # the crashed run's
    with naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=2) as registration:
        assert list(keys(etcd_server, etcd_prefix)) == [key]
        assert lease_of(etcd_server, key) == registration.lease != int(lease, 16)


def test_instance_id_names_the_key(etcd_server: EtcdServer, etcd_prefix: str) -> None:
    with naming.register(
        target(etcd_server, etcd_prefix), "10.0.0.1:80", ttl=2, instance_id="pod-7"
    ):
        assert list(keys(etcd_server, etcd_prefix)) == [f"{etcd_prefix}/svc/pod-7"]
    with pytest.raises(ValueError, match="instance_id must be a non-empty string without '/'"):
        naming.register(target(etcd_server, etcd_prefix), "10.0.0.1:80", instance_id="a/b")


def test_pause_removes_the_record_and_resume_brings_it_back(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    with naming.register(
        target(etcd_server, etcd_prefix), Address("10.0.0.1:80"), ttl=2
    ) as registration:
        registration.pause()
        registration.pause()
        assert keys(etcd_server, etcd_prefix) == {}
        time.sleep(1.0)  # keepalive rounds pass; a paused registration stays out
        assert keys(etcd_server, etcd_prefix) == {}
        registration.resume()
        wait_until(lambda: bool(keys(etcd_server, etcd_prefix)), DEFAULT_TIMEOUT, "the record back")
    with pytest.raises(NamingError, match="is closed"):
        registration.resume()
