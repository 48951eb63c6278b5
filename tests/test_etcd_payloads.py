"""Values a watcher must survive on a real etcd: poisoned records, and more than 4 MiB of them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import naming
from backends._etcd_client import (
    EtcdConnection,
    EtcdSettings,
    default_client_factory,
    settings_from,
)
from backends._etcd_snapshot import read_pages
from backends.etcd import EtcdBackend
from naming import Address, Operation, parse_target
from naming.core import encode_record
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.etcd import EtcdServer
from tests._etcd_helpers import Follower

DEEP_LIST = "[" * 1200 + "]" * 1200  # 2.4 KB: deeper than Python's recursion limit
DEEP_OBJECT = '{"a":' * 600 + "1" + "}" * 600  # parses, but freezing it would recurse 600 levels
POISON = {
    "list": DEEP_LIST,
    "ours": '{"addr":"10.0.9.1:80","metadata":' + DEEP_OBJECT + "}",
    "endpoints-manager": '{"Op":0,"Addr":"10.0.9.2:80","Metadata":' + DEEP_OBJECT + "}",
}
TOO_DEEP = "the value is nested more than 64 levels deep"


def _skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return sorted(r.getMessage() for r in caplog.records if "skipping record" in r.getMessage())


def test_poisoned_records_in_the_snapshot_are_skipped_and_the_rest_resolve(
    etcd_server: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"{etcd_prefix}/svc"
    etcd_server.put(f"{base}/a", "10.0.0.1:80")
    for name, value in POISON.items():
        etcd_server.put(f"{base}/{name}", value)
    with caplog.at_level(logging.WARNING):
        follower = Follower(
            naming.resolve(f"etcd://{etcd_server.endpoint}/svc?prefix={etcd_prefix}")
        )
        first = follower.watcher.next(timeout=DEFAULT_TIMEOUT)
        follower.apply(first)
        assert [(u.op, u.address) for u in first] == [(Operation.ADD, Address("10.0.0.1:80"))]
        etcd_server.put(f"{base}/b", "10.0.0.2:80")
        follower.wait_for({"10.0.0.1:80", "10.0.0.2:80"})
        follower.watcher.close()
    assert _skipped(caplog) == [
        f"etcd: skipping record {base}/{name}: {TOO_DEEP}" for name in sorted(POISON)
    ]


def test_poisoned_records_arriving_as_events_are_skipped_and_later_records_arrive(
    etcd_server: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"{etcd_prefix}/svc"
    etcd_server.put(f"{base}/a", "10.0.0.1:80")
    with caplog.at_level(logging.WARNING):
        follower = Follower(
            naming.resolve(f"etcd://{etcd_server.endpoint}/svc?prefix={etcd_prefix}")
        )
        follower.wait_for({"10.0.0.1:80"})
        for name, value in POISON.items():
            etcd_server.put(f"{base}/{name}", value)
        etcd_server.put(f"{base}/c", "10.0.0.3:80")
        follower.wait_for({"10.0.0.1:80", "10.0.0.3:80"})
        etcd_server.put(f"{base}/list", DEEP_LIST)  # the same poison again: no second warning
        etcd_server.put(f"{base}/d", "10.0.0.4:80")
        follower.wait_for({"10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"})
        follower.watcher.close()
    assert _skipped(caplog) == [
        f"etcd: skipping record {base}/{name}: {TOO_DEEP}" for name in sorted(POISON)
    ]


# -- more than 4 MiB under the prefix ----------------------------------------------------------


def test_every_page_of_a_snapshot_sees_the_revision_of_the_first(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    base = f"{etcd_prefix}/svc/"
    for i in range(5):
        etcd_server.put(f"{base}k{i}", f"10.0.0.{i}:80")
    target = parse_target(f"etcd://{etcd_server.endpoint}/svc?prefix={etcd_prefix}")
    conn = EtcdConnection(settings_from(target, {}))
    try:
        pages = read_pages(conn, base.encode(), first_keys=2)
        first, revision = next(pages)
        assert [kv.key.decode() for kv in first] == [f"{base}k0", f"{base}k1"]
        etcd_server.put(f"{base}k9", "10.0.0.9:80")  # after the first page: not in the snapshot
        etcd_server.etcdctl("del", f"{base}k3")  # and this one still is
        rest = list(pages)
    finally:
        conn.close()
    assert [r for _, r in rest] == [revision] * len(rest)
    assert [kv.key.decode() for kvs, _ in rest for kv in kvs] == [f"{base}k{i}" for i in (2, 3, 4)]
    assert etcd_server.revision() == revision + 2


SMALL, BIG = 10_000, 4
BIG_BYTES = 1_500_000  # a put stays under etcd's default --max-request-bytes (1.5 MiB)
TXN_OPS = 100  # puts per transaction (etcd allows 128)


class _GatedFactory:
    """Our client factory with a gate: while closed, connecting fails as if etcd were away."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()

    def __call__(self, settings: EtcdSettings, host: str) -> Any:
        if not self.open.is_set():
            raise ConnectionRefusedError(f"gate closed for {host}")
        return default_client_factory(settings, host)


class _GatedPlugin:
    def __init__(self, factory: _GatedFactory) -> None:
        self.factory = factory

    @naming.hookimpl
    def naming_register_backends(self, register: Any) -> None:
        backend = EtcdBackend(self.factory)
        backend.schemes = ("etcd-gated",)  # type: ignore[misc]
        register(backend)


@pytest.fixture
def gate(fresh_registry: Any) -> Iterator[_GatedFactory]:
    factory = _GatedFactory()
    fresh_registry.add_plugin(_GatedPlugin(factory), name="gated-etcd")
    yield factory


def _small(i: int) -> tuple[str, Address]:
    address = Address(f"10.1.{i // 250}.{i % 250 + 1}:80", {"pad": f"{i:05d}" + "p" * 950})
    return f"/big/svc/s{i:05d}", address


def _big(i: int) -> tuple[str, Address]:
    return f"/big/svc/b{i}", Address(f"10.2.0.{i + 1}:80", {"blob": str(i) * BIG_BYTES})


def _put_all(client: Any, records: list[tuple[str, Address]]) -> None:
    for first in range(0, len(records), TXN_OPS):
        puts = [
            client.transactions.put(key, encode_record(address))
            for key, address in records[first : first + TXN_OPS]
        ]
        client.transaction(compare=[], success=puts, failure=[])


def test_more_than_4_mib_resolves_exactly_and_a_watch_catching_up_on_6_mib_too(
    etcd_private: EtcdServer, gate: _GatedFactory
) -> None:
    import etcd3

    loader = etcd3.client(host=etcd_private.host, port=etcd_private.port)
    try:
        _put_all(loader, [_small(i) for i in range(SMALL)])
        for i in range(BIG):
            loader.put(*_encoded(_big(i)))
        expected = {address for _, address in [*map(_small, range(SMALL)), *map(_big, range(BIG))]}
        follower = Follower(naming.resolve(f"etcd-gated://{etcd_private.endpoint}/svc?prefix=/big"))
        first = follower.watcher.next(timeout=30)
        assert len(first) == SMALL + BIG
        follower.apply(first)
        assert follower.addresses == expected
        # Cut the watcher off, then put 4 more big records: the watch that resumes from the
        # revision it had gets them in one response of about 6 MB.
        gate.open.clear()
        loader.close()
        etcd_private.restart()
        loader = etcd3.client(host=etcd_private.host, port=etcd_private.port)
        more = [_big(i) for i in range(BIG, 2 * BIG)]
        for record in more:
            loader.put(*_encoded(record))
        gate.open.set()
        follower.wait_for(expected | {address for _, address in more}, timeout=30)
        follower.watcher.close()
    finally:
        loader.close()


def _encoded(record: tuple[str, Address]) -> tuple[str, str]:
    return record[0], encode_record(record[1])
