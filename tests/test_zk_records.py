"""ZooKeeper records: Apache Curator service-discovery instances read and written, on a real server.

The JSON below is what Curator 5.4's ``JsonInstanceSerializer`` writes (reference/curator-records.md).
"""

from __future__ import annotations

import json
import time

import pytest
from kazoo.client import KazooClient

import naming
from backends._zk_records import CODEC, encode_curator
from naming import Address
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.zookeeper import ZkServer
from tests._etcd_helpers import Follower

CURATOR_PLAIN = (
    b'{"name":"demo","id":"inst-0","address":"10.0.0.2","port":9090,"sslPort":null,'
    b'"payload":null,"registrationTimeUTC":1796154186755,"serviceType":"DYNAMIC","uriSpec":null}'
)
CURATOR_PAYLOAD = (
    b'{"name":"demo","id":"inst-1","address":"10.0.0.1","port":8080,"sslPort":null,'
    b'"payload":{"@class":"java.util.LinkedHashMap","region":"eu","weight":3,"tags":["a","b"]},'
    b'"registrationTimeUTC":1796154187867,"serviceType":"DYNAMIC","uriSpec":null}'
)


def test_curator_instances_decode_to_address_and_payload() -> None:
    plain = CODEC.decode(CURATOR_PLAIN)
    with_payload = CODEC.decode(CURATOR_PAYLOAD)
    assert plain == Address("10.0.0.2:9090")
    assert with_payload == Address(
        "10.0.0.1:8080", {"region": "eu", "weight": 3, "tags": ["a", "b"]}
    )


@pytest.mark.parametrize(
    ("record", "addr"),
    [
        ({"name": "n", "id": "i", "address": "h", "port": "7000"}, "h:7000"),  # a string port
        ({"name": "n", "id": "i", "address": "h", "port": None, "sslPort": 7443}, "h:7443"),
        ({"name": "n", "id": "i", "address": "::1", "port": 7000}, "[::1]:7000"),
        ({"address": "h", "port": 1, "enabled": True, "extra": {"x": 1}}, "h:1"),  # unknown field
    ],
)
def test_curator_rules(record: dict[str, object], addr: str) -> None:
    assert CODEC.decode(json.dumps(record)).addr == addr


@pytest.mark.parametrize(
    "record",
    [
        {"address": "h", "port": 1, "enabled": False},  # disabled: Curator's provider skips it
        {"address": "h", "port": None},
        {"address": "h", "port": 70000},
        {"address": "", "port": 1},
        {"address": "h", "port": True},
    ],
)
def test_curator_records_that_are_not_instances(record: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="curator record"):
        CODEC.decode(json.dumps(record))


def test_curator_records_resolve_under_the_base_path_and_survive_the_parent_going(
    zk_server: ZkServer, zk_root: str, zk_client: KazooClient
) -> None:
    base = f"{zk_root}/discovery"
    zk_client.create(f"{base}/demo/inst-0", CURATOR_PLAIN, makepath=True)
    watcher = naming.resolve(f"zk://{zk_server.endpoint}/demo?root={base}")
    try:
        follower = Follower(watcher)
        follower.apply(watcher.next(timeout=DEFAULT_TIMEOUT))
        assert follower.addresses == {Address("10.0.0.2:9090")}
        zk_client.create(f"{base}/demo/inst-1", CURATOR_PAYLOAD)
        follower.wait_for({Address("10.0.0.2:9090"), CODEC.decode(CURATOR_PAYLOAD)})
        # Curator's parents are container nodes: the service node goes, then comes back
        zk_client.delete(f"{base}/demo", recursive=True)
        follower.wait_for(set())
        zk_client.create(f"{base}/demo/inst-0", CURATOR_PLAIN, makepath=True)
        follower.wait_for({"10.0.0.2:9090"})
    finally:
        watcher.close()


def test_record_format_curator_writes_an_instance_curator_reads(
    zk_server: ZkServer, zk_root: str, zk_client: KazooClient
) -> None:
    target = f"zk://{zk_server.endpoint}/demo?root={zk_root}"
    metadata = {"region": "eu", "weight": 3}
    before = int(time.time() * 1000)
    address = Address("127.0.0.1:10001", metadata)
    with naming.register(target, address, ttl=3.0, record_format="curator", instance_id="inst-7"):
        data, stat = zk_client.get(f"{zk_root}/demo/inst-7")
        after = int(time.time() * 1000)
        record = json.loads(data)
        assert list(record) == [
            "name",
            "id",
            "address",
            "port",
            "sslPort",
            "payload",
            "registrationTimeUTC",
            "serviceType",
            "uriSpec",
        ]
        assert record["name"] == "demo"
        assert record["id"] == "inst-7"
        assert record["address"] == "127.0.0.1"
        assert record["port"] == 10001
        assert record["sslPort"] is None
        assert record["payload"] == {"@class": "java.util.LinkedHashMap", **metadata}
        assert before <= record["registrationTimeUTC"] <= after
        assert record["serviceType"] == "DYNAMIC"
        assert record["uriSpec"] is None
        assert stat.ephemeralOwner != 0  # DYNAMIC: an ephemeral node
        assert b" " not in data and not data.endswith(b"\n")  # compact, as Curator writes
        assert CODEC.decode(data) == address  # and we read it back


def test_encode_curator_without_metadata_has_a_null_payload() -> None:
    text = encode_curator(Address("h:1"), name="s", instance_id="i", clock=lambda: 1.5)
    assert text == (
        '{"name":"s","id":"i","address":"h","port":1,"sslPort":null,"payload":null,'
        '"registrationTimeUTC":1500,"serviceType":"DYNAMIC","uriSpec":null}'
    )
