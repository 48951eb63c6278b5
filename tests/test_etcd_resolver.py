"""The etcd watcher against a real etcd: snapshot + watch, interop, outages, compaction, failover."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import naming
from backends._etcd_client import EtcdSettings, default_client_factory
from backends.etcd import EtcdBackend
from naming import Address, Update
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.etcd import EtcdCluster, EtcdServer
from tests._etcd_helpers import Follower


def target(server: EtcdServer | EtcdCluster, prefix: str, service: str = "svc") -> str:
    endpoints = server.endpoints if isinstance(server, EtcdCluster) else server.endpoint
    return f"etcd://{endpoints}/{service}?prefix={prefix}"


def test_records_written_before_resolve_are_the_first_result(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    etcd_server.etcdctl(
        "put", f"{etcd_prefix}/svc/a", '{"addr":"10.0.0.1:80","metadata":{"zone":"z1"}}'
    )
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc/b", "10.0.0.2:80")
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc_other/c", "10.0.0.3:80")  # another service
    with naming.resolve(target(etcd_server, etcd_prefix)) as watcher:
        first = watcher.next(timeout=DEFAULT_TIMEOUT)
        assert sorted(first, key=lambda u: u.addr) == [
            Update.add(Address("10.0.0.1:80", {"zone": "z1"})),
            Update.add("10.0.0.2:80"),
        ]


def test_puts_and_deletes_after_the_snapshot_arrive_as_deltas(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    with naming.resolve(target(etcd_server, etcd_prefix)) as watcher:
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == []
        etcd_server.etcdctl("put", f"{etcd_prefix}/svc/a", "10.0.0.1:80")
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == [Update.add("10.0.0.1:80")]
        etcd_server.etcdctl("put", f"{etcd_prefix}/svc/a", "10.0.0.9:80")  # the record moved
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == [
            Update.delete("10.0.0.1:80"),
            Update.add("10.0.0.9:80"),
        ]
        etcd_server.etcdctl("del", f"{etcd_prefix}/svc/a")
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == [Update.delete("10.0.0.9:80")]


def test_two_keys_with_one_address_give_one_address_until_both_go(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    follower = Follower(naming.resolve(target(etcd_server, etcd_prefix)))
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc/a", "10.0.0.1:80")
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc/b", "10.0.0.1:80")
    follower.wait_for({"10.0.0.1:80"})
    etcd_server.etcdctl("del", f"{etcd_prefix}/svc/a")
    assert follower.quiet_for(0.3) == []
    etcd_server.etcdctl("del", f"{etcd_prefix}/svc/b")
    follower.wait_for(set())
    follower.watcher.close()


def test_interop_records_resolve_and_garbage_is_skipped_with_one_warning(
    etcd_server: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"{etcd_prefix}/svc"
    etcd_server.etcdctl("put", f"{base}/go-zero-lease-1", "10.0.0.1:80")
    etcd_server.etcdctl(
        "put", f"{base}/endpoints-mgr", '{"Op":0,"Addr":"10.0.0.2:80","Metadata":{"w":5}}'
    )
    etcd_server.etcdctl("put", f"{base}/garbage", "{not json")
    with caplog.at_level(logging.WARNING, logger="naming"):
        follower = Follower(naming.resolve(target(etcd_server, etcd_prefix)))
        follower.wait_for({Address("10.0.0.1:80"), Address("10.0.0.2:80", {"w": 5})})
        etcd_server.etcdctl("put", f"{base}/garbage", "still not a record")  # the same key again
        etcd_server.etcdctl("put", f"{base}/ours", '{"addr":"10.0.0.3:80"}')
        follower.wait_for(
            {Address("10.0.0.1:80"), Address("10.0.0.2:80", {"w": 5}), Address("10.0.0.3:80")}
        )
    warnings = [r.getMessage() for r in caplog.records if "skipping record" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"etcd: skipping record {base}/garbage: the value is not valid JSON"
    )
    follower.watcher.close()


def test_a_record_that_turns_into_garbage_is_removed(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    follower = Follower(naming.resolve(target(etcd_server, etcd_prefix)))
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc/a", "10.0.0.1:80")
    follower.wait_for({"10.0.0.1:80"})
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc/a", "garbage")
    follower.wait_for(set())
    follower.watcher.close()


def test_no_change_is_lost_across_an_etcd_restart(
    etcd_private: EtcdServer, etcd_prefix: str
) -> None:
    base = f"{etcd_prefix}/svc"
    for i in range(5):
        etcd_private.etcdctl("put", f"{base}/k{i}", f"10.0.0.{i}:80")
    follower = Follower(naming.resolve(target(etcd_private, etcd_prefix)))
    follower.wait_for({f"10.0.0.{i}:80" for i in range(5)})
    etcd_private.restart()
    # These writes race the watcher's reconnect: before or after it, none may be lost.
    etcd_private.etcdctl("del", f"{base}/k0")
    etcd_private.etcdctl("put", f"{base}/k1", "10.0.1.1:80")
    etcd_private.etcdctl("put", f"{base}/k9", "10.0.0.9:80")
    follower.wait_for({"10.0.1.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.9:80"})
    etcd_private.stop()
    assert follower.quiet_for(0.5) == [], "the last known set must be kept while etcd is down"
    etcd_private.start()
    etcd_private.etcdctl("del", f"{base}/k9")
    follower.wait_for({"10.0.1.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"})
    follower.watcher.close()


class GatedFactory:
    """Our own client factory with a gate: while closed, connecting fails as if etcd were away."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()

    def __call__(self, settings: EtcdSettings, host: str) -> Any:
        if not self.open.is_set():
            raise ConnectionRefusedError(f"gate closed for {host}")
        return default_client_factory(settings, host)


@pytest.fixture
def gate(fresh_registry: Any) -> Iterator[GatedFactory]:
    factory = GatedFactory()
    fresh_registry.add_plugin(_GatedPlugin(factory), name="gated-etcd")
    yield factory


class _GatedPlugin:
    def __init__(self, factory: GatedFactory) -> None:
        self.factory = factory

    @naming.hookimpl
    def naming_register_backends(self, register: Any) -> None:
        backend = EtcdBackend(self.factory)
        backend.schemes = ("etcd-gated",)  # type: ignore[misc]
        register(backend)


def test_compaction_while_cut_off_resyncs_to_the_exact_set(
    etcd_private: EtcdServer, etcd_prefix: str, gate: GatedFactory
) -> None:
    base = f"{etcd_prefix}/svc"
    for i in range(4):
        etcd_private.etcdctl("put", f"{base}/k{i}", f"10.0.0.{i}:80")
    follower = Follower(
        naming.resolve(f"etcd-gated://{etcd_private.endpoint}/svc?prefix={etcd_prefix}")
    )
    follower.wait_for({f"10.0.0.{i}:80" for i in range(4)})
    gate.open.clear()
    etcd_private.restart()  # the stream breaks, and the gate keeps the watcher out
    etcd_private.etcdctl("del", f"{base}/k0")
    etcd_private.etcdctl("put", f"{base}/k1", "10.0.1.1:80")
    etcd_private.etcdctl("put", f"{base}/k7", "10.0.0.7:80")
    etcd_private.etcdctl("put", f"{base}/k8", "10.0.0.8:80")
    etcd_private.etcdctl("del", f"{base}/k8")
    etcd_private.compact()
    assert follower.quiet_for(0.3) == []
    gate.open.set()
    follower.wait_for({"10.0.1.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.7:80"})
    # Only the difference was emitted: k2 and k3 never left, k8 never appeared.
    after = [u for batch in follower.history[1:] for u in batch]
    assert sorted(map(repr, after)) == sorted(
        map(
            repr,
            [
                Update.delete("10.0.0.0:80"),
                Update.delete("10.0.0.1:80"),
                Update.add("10.0.1.1:80"),
                Update.add("10.0.0.7:80"),
            ],
        )
    )
    follower.watcher.close()


def test_the_first_reachable_host_of_the_authority_is_used(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    etcd_server.etcdctl("put", f"{etcd_prefix}/svc/a", "10.0.0.1:80")
    dead = "127.0.0.1:9"  # the discard port: nothing listens there
    with naming.resolve(
        f"etcd://{dead},{etcd_server.endpoint}/svc?prefix={etcd_prefix}&timeout=1"
    ) as watcher:
        follower = Follower(watcher)
        follower.wait_for({"10.0.0.1:80"})


def test_leader_killed_in_a_cluster_the_watcher_and_registration_carry_on(
    etcd_cluster: EtcdCluster, etcd_prefix: str
) -> None:
    tgt = target(etcd_cluster, etcd_prefix) + "&timeout=2"
    follower = Follower(naming.resolve(tgt))
    registration = naming.register(tgt, "10.0.0.1:80", ttl=3)
    follower.wait_for({"10.0.0.1:80"})
    leader = etcd_cluster.leader()
    leader.kill()
    wait_until(
        lambda: (
            etcd_cluster.etcdctl(
                "put", f"{etcd_prefix}/svc/b", "10.0.0.2:80", check=False
            ).returncode
            == 0
        ),
        DEFAULT_TIMEOUT,
        "a write after the election",
    )
    follower.wait_for({"10.0.0.1:80", "10.0.0.2:80"})
    # The registration outlives its TTL: its keepalive moved to a live member.
    assert follower.quiet_for(4.0) == []
    assert Address("10.0.0.1:80") in follower.addresses
    registration.close()
    follower.wait_for({"10.0.0.2:80"})
    follower.watcher.close()
