"""Key layouts and records of other tools: etcd's endpoints manager, go-zero, kratos; precedence."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest

import naming
from backends._etcd_client import settings_from
from backends._etcd_records import decode_record
from naming import Address, parse_target
from naming.testing.etcd import EtcdServer
from tests._etcd_helpers import Follower, keys


@pytest.mark.parametrize(
    ("target", "options", "key_prefix"),
    [
        ("etcd:///hello", {}, "/services/hello/"),
        ("etcd:///hello?prefix=", {}, "hello/"),
        ("etcd:///hello", {"prefix": ""}, "hello/"),
        ("etcd:///hello?prefix=/", {}, "/hello/"),
        ("etcd:///hello?prefix=apps", {}, "apps/hello/"),
        ("etcd:///hello?prefix=apps/", {}, "apps/hello/"),
        ("etcd:///hello?prefix=/a/b//", {}, "/a/b/hello/"),
        ("etcd:///user.rpc?prefix=", {}, "user.rpc/"),
        ("etcd:///hello?prefix=/svc", {"prefix": "kw"}, "kw/hello/"),
    ],
)
def test_any_prefix_is_allowed_and_an_empty_one_puts_the_service_first(
    target: str, options: dict[str, str], key_prefix: str
) -> None:
    assert settings_from(parse_target(target), options).key_prefix == key_prefix


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"addr":"10.0.0.1:80","Addr":"10.0.0.2:80"}', Address("10.0.0.1:80")),
        ('{"Addr":"10.0.0.2:80","addr":"10.0.0.1:80"}', Address("10.0.0.1:80")),
        ('{"Op":0,"Addr":"10.0.0.2:80","addr":"10.0.0.1:80","Metadata":{"w":1}}', "10.0.0.1:80"),
    ],
)
def test_a_record_with_both_addr_and_Addr_is_ours_whatever_the_order(
    value: str, expected: Address | str
) -> None:
    assert decode_record(value.encode()) == Address.of(expected)


KRATOS = {
    "id": "d3f1",
    "name": "helloworld",
    "version": "v1.2.0",
    "metadata": {"region": "r1"},
    "endpoints": ["http://10.0.0.5:8000", "grpc://10.0.0.5:9000?isSecure=false"],
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (KRATOS, Address("10.0.0.5:9000", {"region": "r1", "version": "v1.2.0"})),
        ({**KRATOS, "version": ""}, Address("10.0.0.5:9000", {"region": "r1"})),
        ({**KRATOS, "metadata": {"version": "own"}}, Address("10.0.0.5:9000", {"version": "own"})),
        ({"endpoints": ["grpcs://[::1]:9443", "grpc://10.0.0.6:9000"]}, Address("[::1]:9443")),
        ({"endpoints": [5, "grpc://10.0.0.6:9000"], "metadata": None}, Address("10.0.0.6:9000")),
    ],
)
def test_a_kratos_record_is_its_first_grpc_endpoint_with_metadata_and_version(
    record: dict[str, object], expected: Address
) -> None:
    assert decode_record(json.dumps(record).encode()) == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"endpoints": ["http://10.0.0.5:8000"]}, "without a grpc:// endpoint"),
        ({"endpoints": "grpc://10.0.0.5:9000"}, "'endpoints' is not a list"),
        ({"endpoints": ["grpc://10.0.0.5:9000"], "metadata": [1]}, "'metadata' is not a JSON"),
        ({"endpoints": ["grpc://no-port"]}, "has no port"),
    ],
)
def test_a_kratos_record_without_a_usable_grpc_endpoint_is_refused(
    record: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_record(json.dumps(record).encode())


@pytest.fixture
def bare_name(etcd_server: EtcdServer) -> Iterator[str]:
    """A service name of the test's own, for keys outside any prefix; its keys go afterwards."""
    name = f"hello-{uuid.uuid4().hex[:8]}"
    yield name
    etcd_server.etcdctl("del", "--prefix", name, check=False)
    etcd_server.etcdctl("del", "--prefix", f"/{name}", check=False)


def test_the_endpoints_manager_layout_resolves_with_an_empty_prefix(
    etcd_server: EtcdServer, bare_name: str
) -> None:
    # What go.etcd.io/etcd/client/v3/naming/endpoints writes for the Go target etcd:///hello.
    etcd_server.put(f"{bare_name}/10.0.0.1:80", '{"Op":0,"Addr":"10.0.0.1:80","Metadata":null}')
    etcd_server.put(f"{bare_name}/10.0.0.2:80", '{"Op":0,"Addr":"10.0.0.2:80","Metadata":{"w":2}}')
    etcd_server.put(f"/{bare_name}/10.0.0.8:80", "10.0.0.8:80")  # another layout: not read
    etcd_server.put(f"{bare_name}x/10.0.0.9:80", "10.0.0.9:80")  # another service: not read
    for tgt, options in [
        (f"etcd://{etcd_server.endpoint}/{bare_name}?prefix=", {}),
        (f"etcd://{etcd_server.endpoint}/{bare_name}", {"prefix": ""}),
    ]:
        follower = Follower(naming.resolve(tgt, **options))
        follower.wait_for({Address("10.0.0.1:80"), Address("10.0.0.2:80", {"w": 2})})
        etcd_server.etcdctl("del", f"{bare_name}/10.0.0.1:80")
        follower.wait_for({Address("10.0.0.2:80", {"w": 2})})
        etcd_server.put(f"{bare_name}/10.0.0.1:80", '{"Op":0,"Addr":"10.0.0.1:80"}')
        follower.wait_for({Address("10.0.0.1:80"), Address("10.0.0.2:80", {"w": 2})})
        follower.watcher.close()


def test_go_zero_keys_under_the_service_name_resolve_and_go_with_their_lease(
    etcd_server: EtcdServer, bare_name: str
) -> None:
    service = f"{bare_name}.rpc"  # go-zero's default key: user.rpc/<lease id> = host:port
    lease = etcd_server.etcdctl("lease", "grant", "30").stdout.split()[1]
    etcd_server.etcdctl("put", f"{service}/{int(lease, 16)}", "10.0.0.3:80", f"--lease={lease}")
    follower = Follower(naming.resolve(f"etcd://{etcd_server.endpoint}/{service}?prefix="))
    follower.wait_for({"10.0.0.3:80"})
    etcd_server.etcdctl("lease", "revoke", lease)
    follower.wait_for(set())
    follower.watcher.close()


def test_a_prefix_without_a_leading_slash_registers_and_resolves_there(
    etcd_server: EtcdServer, bare_name: str
) -> None:
    tgt = f"etcd://{etcd_server.endpoint}/svc?prefix={bare_name}"
    with naming.register(tgt, "10.0.0.4:80", ttl=5):
        assert list(keys(etcd_server, f"{bare_name}/")) == [f"{bare_name}/svc/10.0.0.4:80"]
        follower = Follower(naming.resolve(tgt))
        follower.wait_for({"10.0.0.4:80"})
    follower.wait_for(set())
    follower.watcher.close()


def test_kratos_records_and_a_record_with_both_addr_keys_resolve_on_etcd(
    etcd_server: EtcdServer, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"{etcd_prefix}/microservices/helloworld"  # kratos: /microservices/<name>/<id>
    etcd_server.put(f"{base}/d3f1", json.dumps(KRATOS))
    etcd_server.put(f"{base}/http-only", json.dumps({**KRATOS, "endpoints": ["http://h:1"]}))
    etcd_server.put(f"{base}/both", '{"Addr":"10.0.0.2:80","addr":"10.0.0.7:80"}')
    tgt = f"etcd://{etcd_server.endpoint}/helloworld?prefix={etcd_prefix}/microservices"
    with caplog.at_level(logging.WARNING):
        follower = Follower(naming.resolve(tgt))
        follower.wait_for(
            {
                Address("10.0.0.5:9000", {"region": "r1", "version": "v1.2.0"}),
                Address("10.0.0.7:80"),
            }
        )
        follower.watcher.close()
    skipped = [r.getMessage() for r in caplog.records if "skipping record" in r.getMessage()]
    assert skipped == [
        f"etcd: skipping record {base}/http-only: kratos record without a grpc:// endpoint"
    ]
